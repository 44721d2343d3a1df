r"""Argument checks shared by the scale-out entry points (``attribute_dataset``
and ``RayForward``), made before Ray starts."""

from __future__ import annotations

from typing import Any


def check_count(name: str, value: Any, minimum: int = 1, none: bool = False) -> None:
    r"""Raises ``ValueError`` unless ``value`` is an int of at least
    ``minimum`` (or None where ``none``)."""
    if none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def check_picklable(name: str, builder: Any, builds: str = "explainer") -> bytes:
    r"""``builder`` pickled by Ray's cloudpickle (what is sent to each
    worker); a ``TypeError`` naming ``name`` if it is not callable or cannot be
    pickled."""
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
