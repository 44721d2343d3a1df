r"""How a tuple of input tensors maps to one flat coordinate vector per row.

The estimator perturbs all tensors of a tuple input jointly, so it works on a
``(rows, d)`` matrix where ``d`` is the total number of coordinates of one row
across the tuple. :class:`InputLayout` converts between the two views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Space:
    r"""The coordinates the estimator samples directions in.

    Args:

        dim (int): Coordinates per row.
        batch_size (int): Rows.
        device (torch.device): Where the inputs live.
        dtype (torch.dtype): The floating dtype of the estimate.
    """

    dim: int
    batch_size: int
    device: torch.device
    dtype: torch.dtype


class InputLayout:
    r"""The shapes of a tuple of inputs without their batch dimension.

    Args:

        inputs (tuple[Tensor, ...]): The input tensors, all with the same first
                    (batch) dimension and a floating-point dtype.
    """

    def __init__(self, inputs: Sequence[Tensor]) -> None:
        if len(inputs) == 0:
            raise ValueError("inputs is empty: pass at least one input tensor.")
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"input {i} is a {type(t).__name__}, not a torch.Tensor; "
                    "convert it with torch.as_tensor first."
                )
            if t.dim() == 0:
                raise ValueError(
                    f"input {i} is a 0-dimensional tensor; inputs need a batch "
                    "dimension first (add one with .unsqueeze(0))."
                )
            if not t.dtype.is_floating_point:
                raise ValueError(
                    f"input {i} has dtype {t.dtype}; the likelihood-ratio estimator "
                    "adds Gaussian noise and needs floating-point inputs (for token "
                    "ids, explain the embeddings instead)."
                )
        batch = inputs[0].shape[0]
        for i, t in enumerate(inputs):
            if t.shape[0] != batch:
                raise ValueError(
                    f"input {i} has {t.shape[0]} rows but input 0 has {batch}; all "
                    "tensors of a tuple input must share the batch dimension."
                )
            if t.device != inputs[0].device:
                raise ValueError(
                    f"input {i} is on {t.device} but input 0 is on "
                    f"{inputs[0].device}; move all inputs to one device."
                )
        self.batch_size: int = batch
        self.shapes: tuple[torch.Size, ...] = tuple(t.shape[1:] for t in inputs)
        self.sizes: tuple[int, ...] = tuple(math.prod(s) for s in self.shapes)
        self.dim: int = sum(self.sizes)
        self.device: torch.device = inputs[0].device
        self.dtype: torch.dtype = torch.promote_types(
            torch.float32, _common_dtype([t.dtype for t in inputs])
        )
        offsets = [0]
        for s in self.sizes:
            offsets.append(offsets[-1] + s)
        self.offsets: tuple[int, ...] = tuple(offsets)

    @property
    def space(self) -> Space:
        r"""The flat coordinates of one row of all inputs."""
        return Space(self.dim, self.batch_size, self.device, self.dtype)

    def flatten(self, inputs: Sequence[Tensor]) -> Tensor:
        r"""Concatenates the inputs into one ``(rows, d)`` tensor."""
        rows = inputs[0].shape[0]
        return torch.cat(
            [t.detach().reshape(rows, -1).to(self.dtype) for t in inputs], dim=1
        )

    def split(self, flat: Tensor, dtypes: Sequence[torch.dtype] | None = None):
        r"""Splits a ``(rows, d)`` tensor back into tensors shaped like the inputs."""
        rows = flat.shape[0]
        parts = torch.split(flat, list(self.sizes), dim=1)
        out = tuple(p.reshape(rows, *s) for p, s in zip(parts, self.shapes))
        if dtypes is not None:
            out = tuple(p.to(dt) for p, dt in zip(out, dtypes))
        return out

    def per_coordinate(self, values: Sequence[Tensor]) -> Tensor:
        r"""Expands one scalar per input tensor into a ``(d,)`` vector."""
        return torch.cat(
            [v.reshape(1).expand(n) for v, n in zip(values, self.sizes)]
        ).to(self.device, self.dtype)


def _common_dtype(dtypes: Sequence[torch.dtype]) -> torch.dtype:
    out = dtypes[0]
    for dt in dtypes[1:]:
        out = torch.promote_types(out, dt)
    return out
