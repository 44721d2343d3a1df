r"""Argument checks shared by the scale-out entry points (``attribute_dataset``
and ``RayForward``), made before Ray starts."""

from __future__ import annotations

from typing import Any


def check_int_at_least(
    name: str, value: Any, minimum: int = 1, allow_none: bool = False
) -> None:
    r"""
    Raises ``ValueError`` unless ``value`` is an int (not a bool) of at least
    ``minimum``, or None where ``allow_none``.

    Args:

        name (str): The argument's name, for the message.
        value (Any): The argument's value.
        minimum (int, optional): The smallest value allowed.
                    Default: 1
        allow_none (bool, optional): Whether None is allowed.
                    Default: False
    """
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def check_picklable(name: str, builder: Any, builds: str = "explainer") -> bytes:
    r"""
    ``builder`` pickled by Ray's cloudpickle (what is sent to each worker); a
    ``TypeError`` naming ``name`` if it is not callable or cannot be pickled.

    Args:

        name (str): The argument's name, for the message (``"make_explainer"``,
                    ``"make_model"``).
        builder (Any): The function each worker calls once to build what it
                    runs.
        builds (str, optional): What ``builder`` builds, for the message.
                    Default: ``"explainer"``

    Returns:
        *bytes*: the pickled ``builder``.
    """
    if not callable(builder):
        raise TypeError(
            f"{name} must be a function that builds the {builds} (called "
            f"once per worker), not {type(builder).__name__}."
        )
    from ray import cloudpickle

    try:
        return cloudpickle.dumps(builder)
    except Exception as exc:
        raise TypeError(
            f"{name} ({builder!r}) cannot be pickled, so it cannot "
            f"be sent to the workers ({type(exc).__name__}: {exc}). Build the "
            "model inside it (load weights from a file) rather than capturing "
            "locks, open files, servers or CUDA streams; nothing was run."
        ) from exc
