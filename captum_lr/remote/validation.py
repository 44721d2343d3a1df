r"""Argument checks shared by the parts of
:class:`~captum_lr.remote.blackbox.BlackBox`: each error says what was wrong
and what to pass instead."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.remote.errors import default_transient


def check_callable(name: str, value: Any) -> None:
    r"""Raises ``TypeError`` unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}.")


def check_count(
    name: str, value: Any, allow_none: bool = False, minimum: int = 1
) -> None:
    r"""Raises unless ``value`` is an int of at least ``minimum`` (or None where
    ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be {'None or ' if allow_none else ''}an int, not {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")


def check_seconds(name: str, value: Any) -> float:
    r"""A finite number of seconds >= 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {value!r}.")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def check_rate(value: Any) -> float | None:
    r"""``requests_per_second``: None, or a positive finite number (a float)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"requests_per_second must be None or a positive number, not {value!r}."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"requests_per_second must be a positive finite number, got {value}."
        )
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    r"""Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}.")


def check_transient(value: Any) -> tuple[type[BaseException], ...]:
    r"""``transient``: None (the defaults) or a tuple of exception types."""
    if value is None:
        return default_transient()
    if not (
        isinstance(value, tuple)
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in value)
    ):
        raise TypeError(f"transient must be a tuple of exception types, not {value!r}.")
    return value


def check_output_dtype(dtype: Any) -> None:
    r"""``dtype``: None or a floating ``torch.dtype``."""
    if dtype is not None and (
        not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
    ):
        raise TypeError(
            f"dtype must be a floating torch.dtype (e.g. torch.float32), not {dtype!r}."
        )


def as_input_tensor(value: Any, i: int) -> Tensor:
    r"""Input ``i`` of a call as a real tensor (NumPy arrays are wrapped)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind not in "biufc":
            raise TypeError(
                f"input {i} is a NumPy array of dtype {value.dtype}; inputs must "
                "be numeric."
            )
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise TypeError(
            f"input {i} is a {type(value).__name__}; BlackBox takes tensors (as "
            "Captum passes them) or NumPy arrays."
        )
    check_input_dtype(value, i)
    return value


def check_input_dtype(t: Tensor, i: int) -> None:
    r"""Raises ``TypeError`` for complex or quantized input tensors."""
    if t.is_complex():
        raise TypeError(f"input {i} has complex dtype {t.dtype}; use real inputs.")
    if t.is_quantized:
        raise TypeError(f"input {i} is quantized ({t.dtype}); dequantize it first.")
