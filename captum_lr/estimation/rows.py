r"""Which noise stream each row of a call draws from, and its noise scale.

A plain call gives all its rows one stream (rows are different examples).
Inside :meth:`~captum_lr.LREstimator.noise_streams` a :class:`StreamLayout`
says how Captum laid the rows out, so that rows Captum averages (the path
points of IntegratedGradients, GradientShap's random baselines) draw
independent noise, and which example each row belongs to (its noise scale
follows that example's RMS under ``sigma="auto"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout


@dataclass
class StreamLayout:
    r"""
    How the rows of the calls inside a ``noise_streams`` context map to noise
    streams and to the examples that set their noise scale.

    Args:

        kind (str): ``"steps"`` (step-major groups of ``size`` rows) or
                    ``"samples"`` (example-major, ``size`` rows per example).
        size (int): The group size or the samples per example.
        reference (tuple[Tensor, ...], optional): One row per example.
        offset (int): Streams (``"steps"``) or rows used by earlier calls.
    """

    kind: str
    size: int
    reference: tuple[Tensor, ...] | None
    offset: int = 0

    def assign(self, batch: int, shared: bool, device: torch.device):
        r"""``(rows,)`` noise streams and examples of a call's rows (and counts
        the call's streams, for the next call in the context)."""
        rows = torch.arange(batch, device=device)
        if batch % self.size:
            raise ValueError(
                f"a call inside noise_streams({self.kind!r}, {self.size}) has "
                f"{batch} rows, not a multiple of {self.size}."
            )
        if self.kind == "samples":
            streams = rows % self.size if shared else rows
            return streams, rows // self.size
        if shared:
            streams = self.offset + rows // self.size
            self.offset += batch // self.size
        else:
            streams = self.offset + rows
            self.offset += batch
        return streams, rows % self.size


def assign_streams(
    context: StreamLayout | None, batch: int, shared: bool, device: torch.device
) -> tuple[Tensor, Tensor]:
    r"""Each row's noise stream and example, with or without a context."""
    if context is not None:
        return context.assign(batch, shared, device)
    rows = torch.arange(batch, device=device)
    return (torch.zeros_like(rows) if shared else rows), rows


COORDINATE_FLOOR = 0.5
r"""A coordinate's step is at least this share of its tensor's RMS step:
smaller floors step zero-valued features too finely for float32 outputs of
a few hundred (Captum's layer tests), larger ones step 0/1 features next
to large ones too coarsely (Captum's Titanic model)."""


def rms_sigmas(
    inputs: tuple[Tensor, ...],
    reference: tuple[Tensor, ...] | None,
    layout: InputLayout,
    fraction: float,
    examples: Tensor,
    per_coordinate: bool = False,
) -> Tensor:
    r"""
    ``(rows, d)``: ``fraction`` times the RMS of each input tensor in the
    example each row belongs to (the row itself without a reference; 1 where
    that is 0). With ``per_coordinate`` (coordinate sweeps), ``fraction``
    times each coordinate's magnitude in that example, at least
    ``COORDINATE_FLOOR`` times the RMS step.
    """
    if reference is None:
        reference = inputs
    elif len(reference) != len(inputs) or any(
        r.shape[1:] != t.shape[1:] for r, t in zip(reference, inputs)
    ):
        raise ValueError(
            "noise_streams(reference=...) must be shaped like the inputs (one "
            "row per example)."
        )
    parts = []
    for ref, size in zip(reference, layout.sizes):
        rows = ref.detach().reshape(ref.shape[0], -1).to(layout.dtype)
        rms = rows.square().mean(1).sqrt()
        rms = torch.where(rms > 0, rms, torch.ones_like(rms)).to(layout.device)
        scale = fraction * rms.index_select(0, examples)
        if per_coordinate:
            size_j = rows.abs().to(layout.device).index_select(0, examples)
            floor = COORDINATE_FLOOR * scale.unsqueeze(1)
            parts.append(torch.maximum(fraction * size_j, floor))
            continue
        parts.append(scale.unsqueeze(1).expand(layout.batch_size, size))
    return torch.cat(parts, dim=1)
