r"""Checks shared by the Captum-facing classes: what was passed as inputs, in
words a user can act on, before Captum's bare assertions."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor


def kind(value: Any) -> str:
    r"""A short description of a value's type (and a NumPy array's shape)."""
    if isinstance(value, np.ndarray):
        return f"a NumPy array of shape {value.shape}"
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace(
        "builtins.", ""
    )


def input_tensors(inputs: Any) -> tuple[tuple[Tensor, ...], list[str]]:
    r"""
    The input tensors as a tuple, and their names in messages.

    Args:

        inputs (Any): What was passed as ``inputs``.

    Returns:
        *tuple* of the tensors and their names (``inputs``, ``inputs[i]``).

    Raises:
        TypeError: for a list of tensors, a list, a NumPy array, a scalar or a
                    tuple with a non-tensor, saying what to pass instead;
        ValueError: for an empty tuple.
    """
    if isinstance(inputs, Tensor):
        return (inputs,), ["inputs"]
    if isinstance(inputs, tuple):
        if not inputs:
            raise ValueError("inputs is an empty tuple; pass at least one tensor.")
        names = [f"inputs[{i}]" for i in range(len(inputs))]
        for name, x in zip(names, inputs):
            if not isinstance(x, Tensor):
                raise TypeError(
                    f"{name} is {kind(x)}; every element of a tuple input must "
                    "be a tensor (torch.as_tensor(...))."
                )
        return inputs, names
    if (
        isinstance(inputs, list)
        and inputs
        and all(isinstance(t, Tensor) for t in inputs)
    ):
        raise TypeError(
            "inputs is a list of tensors; Captum takes a tensor or a tuple of "
            "tensors: pass tuple(inputs)."
        )
    if isinstance(inputs, (list, np.ndarray)) or np.isscalar(inputs):
        raise TypeError(
            f"inputs is {kind(inputs)}; pass a tensor with the examples along "
            "the first dimension, e.g. torch.as_tensor(inputs, dtype=torch.float32)."
        )
    raise TypeError(
        f"inputs is {kind(inputs)}; pass a tensor, or a tuple of tensors for a "
        "forward function with several tensor arguments."
    )
