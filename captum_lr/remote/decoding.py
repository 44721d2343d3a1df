r"""From the function's answers to the output tensor: split a batch answer into
rows, turn rows into numbers with ``output=`` (once per row), check them and
assemble one call's rows.

Integer and boolean answers stay integer and boolean (hard labels are not
scores: the estimator refuses them and points to
:class:`~captum_lr.remote.outputs.LabelIndicator`); real answers become the
floating dtype of the call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.remote.errors import MalformedResponseError
from captum_lr.remote.validation import check_callable, check_output_dtype


def split_rows(response: Any, m: int, where: str) -> list[Any]:
    r"""Splits a batch answer into ``m`` per-row values (NumPy rows, copied, or
    objects); raises :class:`MalformedResponseError` naming ``where``."""
    if isinstance(response, Tensor):
        response = response.detach().cpu().numpy()
    if isinstance(response, np.ndarray):
        if response.ndim == 0:
            if m != 1:
                raise MalformedResponseError(
                    f"{where}: the function returned one scalar for {m} rows; it "
                    "must return one value (or one row of values) per input row."
                )
            return [response.reshape(()).copy()]
        if response.shape[0] != m:
            raise MalformedResponseError(
                f"{where}: the function returned {response.shape[0]} rows for "
                f"{m} input rows; it must return one per input row."
            )
        return [r.copy() if isinstance(r, np.ndarray) else r for r in response]
    if isinstance(response, (list, tuple)):
        if len(response) != m:
            raise MalformedResponseError(
                f"{where}: the function returned {len(response)} values for {m} "
                "input rows; it must return one per input row."
            )
        return list(response)
    if isinstance(response, (bool, int, float, str, np.generic)):
        if m != 1:
            raise MalformedResponseError(
                f"{where}: the function returned a single "
                f"{type(response).__name__} for {m} rows; return a sequence with "
                "one value per row."
            )
        return [response]
    raise MalformedResponseError(
        f"{where}: the function returned a {type(response).__name__}; return a "
        "tensor, a NumPy array, a list or a Python scalar (and pass output= to "
        "turn labels or text into numbers, see captum_lr.remote.outputs)."
    )


def numeric_output(rows: Sequence[Any]) -> np.ndarray:
    r"""The default ``output``: stacks per-row numbers into an array.

    Real numbers give float64; integers give int64 and booleans bool, so that
    hard labels are not mistaken for scores (to explain a label, pass
    ``output=``\ :class:`~captum_lr.remote.outputs.LabelIndicator`).

    Args:

        rows (Sequence): One value (a number or an equally shaped array) per row.

    Returns:
        *np.ndarray* of shape ``(len(rows), ...)``: float64, int64 or bool.
    """
    try:
        out = np.asarray([np.asarray(r) for r in rows])
    except (ValueError, TypeError) as exc:
        raise MalformedResponseError(
            f"the rows do not stack into an array ({exc}); every row must have the "
            "same shape."
        ) from exc
    if out.dtype.kind not in "biuf":
        raise MalformedResponseError(
            f"the function returned values of dtype {out.dtype} ({type(rows[0])}); "
            "scores must be real numbers. For labels or text pass output= (see "
            "captum_lr.remote.outputs.LabelIndicator and TextScore)."
        )
    return _keep_kind(out)


def _keep_kind(arr: np.ndarray) -> np.ndarray:
    """bool stays bool, integers become int64, real numbers float64."""
    if arr.dtype.kind == "b":
        return arr
    return arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float64)


def as_numbers(value: Any, m: int, where: str) -> np.ndarray:
    r"""Checks a decoded answer: ``m`` rows of real, finite numbers. Returns it
    as float64, int64 or bool (the kind the values have)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise MalformedResponseError(
            f"{where}: not an array of numbers ({exc})."
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise MalformedResponseError(
            f"{where}: the converted answer has dtype {arr.dtype}; it must be real "
            "numbers."
        )
    if arr.ndim == 0 or arr.shape[0] != m:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} rows"
        raise MalformedResponseError(
            f"{where}: the converted answer has {got} for {m} rows."
        )
    arr = _keep_kind(arr)
    if arr.dtype.kind != "f":
        return arr
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(m, -1))[0])
        raise MalformedResponseError(
            f"{where}: the function returned NaN or Inf for rows "
            f"{rows[:10].tolist()}{' ...' if rows.size > 10 else ''} of the batch; "
            "such answers are not used."
        )
    return arr


class Decoder:
    r"""
    Turns raw answers into checked numbers with ``output`` and assembles a
    call's rows into a tensor.

    Args:

        output (Callable, optional): Per-row answers -> array-like of numbers;
                    None: :func:`numeric_output`.
        dtype (torch.dtype, optional): The floating dtype of real outputs; None:
                    the first input's if floating, else float32.
    """

    def __init__(
        self,
        output: Callable[[list[Any]], Any] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_output_dtype(dtype)
        self.output = output
        self.dtype = dtype

    @property
    def output(self) -> Callable[[list[Any]], Any]:
        r"""The converter (setting None restores :func:`numeric_output`)."""
        return self._output

    @output.setter
    def output(self, value: Callable[[list[Any]], Any] | None) -> None:
        if value is not None:
            check_callable("output", value)
        self._output = value if value is not None else numeric_output

    def decode(self, answers: list[Any], where: str) -> np.ndarray:
        r"""Calls ``output`` once on ``answers`` and checks its result."""
        try:
            numbers = self.output(answers)
        except MalformedResponseError as exc:
            raise MalformedResponseError(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError(
                f"{where}: output= could not convert the answers: {exc}"
            ) from exc
        return as_numbers(numbers, len(answers), where)

    def assemble(
        self,
        parts: Sequence[tuple[np.ndarray, np.ndarray]],
        inverse: np.ndarray,
        device: torch.device,
        input_dtype: torch.dtype,
    ) -> Tensor:
        r"""The call's output from decoded parts, each ``(indices, numbers)``
        for some of the distinct rows; ``inverse`` maps every row of the call
        to its distinct row."""
        shapes = {p[1].shape[1:] for p in parts}
        if len(shapes) > 1:
            raise MalformedResponseError(
                f"the answers of this call decode to rows of different shapes "
                f"{sorted(shapes)}; output= must give every row the same shape."
            )
        size = sum(len(p[0]) for p in parts)
        kind = np.result_type(*(p[1].dtype for p in parts))
        table = np.empty((size, *shapes.pop()), dtype=kind)
        for index, numbers in parts:
            table[index] = numbers
        out = torch.from_numpy(table[inverse])
        if kind.kind in "biu":
            return out.to(device)
        return out.to(device=device, dtype=self.output_dtype(input_dtype))

    def output_dtype(self, input_dtype: torch.dtype) -> torch.dtype:
        r"""The dtype of real outputs for inputs of ``input_dtype``."""
        if self.dtype is not None:
            return self.dtype
        return input_dtype if input_dtype.is_floating_point else torch.float32
