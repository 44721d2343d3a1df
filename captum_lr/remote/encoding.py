r"""A call's arguments, encoded once: one host copy of every batched tensor,
shared by the cache keys and by the batches sent to the function."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.remote.validation import (
    as_input_tensor,
    check_choice,
    check_input_dtype,
)

INPUT_FORMATS = ("tensor", "numpy", "list")


@dataclass
class EncodedCall:
    r"""One call of :class:`~captum_lr.remote.blackbox.BlackBox`, ready to look
    up and send.

    Attributes:

        n (int): Rows of the call.
        device (torch.device): The first input's device (the output's).
        dtype (torch.dtype): The first input's dtype.
        values (list): The call's arguments; the batched ones (one row per input
                    row) as host tensors, the others as given.
        batched (list[int]): Positions of the batched arguments.
        unique (list[bytes]): The distinct row keys, in order of first use.
        first_row (np.ndarray): For each distinct key, the first row having it.
        inverse (np.ndarray): For each row, the index of its key in ``unique``.
    """

    n: int
    device: torch.device
    dtype: torch.dtype
    values: list[Any]
    batched: list[int]
    unique: list[bytes]
    first_row: np.ndarray
    inverse: np.ndarray

    def batch_args(self, rows: np.ndarray, input_format: str) -> list[Any]:
        r"""The function's arguments for the given rows: the batched arguments
        sliced (from the host copy) and converted to ``input_format``, the others
        unchanged."""
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        out = []
        for i, v in enumerate(self.values):
            if i not in self.batched:
                out.append(v)
                continue
            part = v.index_select(0, index)
            if input_format == "tensor":
                out.append(part)
                continue
            if part.dtype == torch.bfloat16:
                part = part.float()  # NumPy has no bfloat16; float32 is exact
            out.append(part.numpy() if input_format == "numpy" else part.tolist())
        return out


class Encoder:
    r"""Splits a call's arguments into batched and fixed ones, copies the batched
    tensors to the host once and keys every row by the exact bytes of its query.

    Args:

        namespace (str): Mixed into every key.
        input_format (str): What the function receives: ``"tensor"``,
                    ``"numpy"`` or ``"list"``.
    """

    def __init__(self, namespace: str, input_format: str) -> None:
        check_choice("input_format", input_format, INPUT_FORMATS)
        self.namespace = namespace
        self.input_format = input_format

    def encode(self, args: Sequence[Any]) -> EncodedCall:
        r"""Encodes the positional arguments of one call (the inputs first)."""
        if not args:
            raise TypeError("BlackBox needs at least one input tensor.")
        first = as_input_tensor(args[0], 0)
        if first.dim() == 0:
            raise ValueError(
                "the first input is 0-dimensional; inputs need a batch dimension "
                "first (add one with .unsqueeze(0))."
            )
        n = first.shape[0]
        values: list[Any] = [first]
        batched = [0]
        for i, a in enumerate(args[1:], start=1):
            if isinstance(a, np.ndarray) and a.dtype != object:
                a = as_input_tensor(a, i)
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n:
                check_input_dtype(a, i)
                batched.append(i)
            values.append(a)
        device, dtype = first.device, first.dtype
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return EncodedCall(0, device, dtype, values, batched, [], empty, empty)
        for i in batched:  # the one host copy of each batched argument
            values[i] = values[i].detach().cpu().contiguous()
        keys = self._keys(values, batched, n)
        index: dict[bytes, int] = {}
        first_row: list[int] = []
        inverse = np.empty(n, dtype=np.int64)
        for row, key in enumerate(keys):
            u = index.setdefault(key, len(first_row))
            if u == len(first_row):
                first_row.append(row)
            inverse[row] = u
        return EncodedCall(
            n, device, dtype, values, batched, list(index), np.array(first_row), inverse
        )

    def _keys(self, values: list[Any], batched: list[int], n: int) -> list[bytes]:
        """One key per row: the exact bytes, dtypes and shapes of the row's query
        (unchanged across versions, so disk caches stay valid)."""
        head = hashlib.blake2b(digest_size=16)
        head.update(self.namespace.encode())
        parts = []
        for i, v in enumerate(values):
            if i in batched:
                head.update(f"{i}:{v.dtype}:{tuple(v.shape[1:])};".encode())
                flat = v.reshape(n, v[0].numel())
                parts.append(flat.view(torch.uint8).reshape(n, -1).numpy())
                continue
            try:
                head.update(pickle.dumps(v))
            except Exception as exc:
                raise TypeError(
                    f"argument {i} ({type(v).__name__}) cannot be pickled into "
                    "the cache key; pass tensors, arrays or plain values."
                ) from exc
        prefix = head.digest()
        rows = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        rows = np.ascontiguousarray(rows)
        return [hashlib.blake2b(r, digest_size=20, key=prefix).digest() for r in rows]
