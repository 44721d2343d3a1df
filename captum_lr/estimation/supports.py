r"""Supports: where each noise sample's perturbation goes.

- :class:`Support`: the whole input (``block=None``);
- :class:`Blocks`: one rectangle per input tensor over its trailing dimensions,
  at a uniformly random position; blocks may be cut by the border, so every
  coordinate is covered with the same probability; all leading dimensions
  (e.g. image channels) are inside the block and get independent noise; a
  list of block sizes is multi-scale (each sample draws one size uniformly);
- :class:`FeatureGroups`: one group of a Captum-style feature mask, drawn
  uniformly.

Positions and groups are drawn from :class:`~captum_lr.estimation.streams.
CounterNoise`, so they are a function of the (stream, sample) pair only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.priors import flat_group_ids
from captum_lr.estimation.streams import SUPPORT, CounterNoise

BlockSpec = int | tuple[int, ...] | list[int | tuple[int, ...]]


class Support:
    r"""Perturbs every coordinate of the input in every sample."""

    def masks(
        self, noise: CounterNoise, streams: Tensor, samples: Tensor
    ) -> Tensor | None:
        r"""Returns ``(m, d)`` 0/1 masks for ``m`` (stream, sample) pairs, or
        None for all coordinates."""
        return None

    def describe(self) -> str:
        return "whole input"


class Blocks(Support):
    r"""One randomly placed rectangle per input tensor per sample.

    Args:

        block (int, tuple[int, ...] or list): A tuple gives the block's extent
                    over the trailing dimensions of each input tensor (all
                    leading non-batch dimensions are inside the block). An int
                    is a run of that many features for 1-D rows and a square
                    over the last two dimensions for 2-D and 3-D rows (e.g.
                    ``(C, H, W)`` images: a ``block x block`` patch in every
                    channel). A list of these is multi-scale: each sample draws
                    one of them uniformly, then its position.
        layout (InputLayout): The inputs' shapes.
    """

    def __init__(self, block: BlockSpec, layout: InputLayout) -> None:
        self.layout = layout
        scales = block if isinstance(block, list) else [block]
        per_scale = [
            tuple(_block_extent(b, shape, i) for i, shape in enumerate(layout.shapes))
            for b in scales
        ]
        for extents in per_scale[1:]:
            if [len(e) for e in extents] != [len(e) for e in per_scale[0]]:
                raise ValueError(
                    f"the block sizes {block!r} span different numbers of "
                    "dimensions; give every scale over the same trailing "
                    "dimensions (e.g. all ints, or all pairs)."
                )
        self.extents = per_scale[0]
        self.scales = per_scale
        # (scales, dims) table of extents, every input's dimensions in turn
        self._table = torch.tensor(
            [[b for extent in extents for b in extent] for extents in per_scale],
            dtype=torch.long,
            device=layout.device,
        )

    def describe(self) -> str:
        if len(self.scales) > 1:
            return f"blocks of {len(self.scales)} scales {self.scales}"
        return f"blocks {self.extents}"

    def masks(self, noise: CounterNoise, streams: Tensor, samples: Tensor) -> Tensor:
        m = samples.shape[0]
        device = self.layout.device
        n_scales, n_dims = self._table.shape
        extra = 1 if n_scales > 1 else 0
        # a function of (stream, sample) only: the same however pairs are batched
        uniform = noise.uniform(SUPPORT, streams, samples, n_dims + extra)
        if extra:
            scale = (uniform[:, n_dims] * n_scales).long().clamp_(max=n_scales - 1)
            sizes = self._table.index_select(0, scale)
        else:
            sizes = self._table.expand(m, n_dims)
        parts, column = [], 0
        for shape, extent in zip(self.layout.shapes, self.extents):
            k = len(extent)
            mask = torch.ones((m,) + (1,) * len(shape), dtype=torch.bool, device=device)
            for t in range(k):
                axis = len(shape) - k + t
                size = shape[axis]
                b = sizes[:, column : column + 1]
                positions = size + b - 1  # starts -b+1 .. size-1
                start = (uniform[:, column : column + 1] * positions).long() - b + 1
                start = start.clamp_(max=size - 1)
                column += 1
                idx = torch.arange(size, device=device).unsqueeze(0)
                inside = (idx >= start) & (idx < start + b)
                view = [m] + [1] * len(shape)
                view[axis + 1] = size
                mask = mask & inside.reshape(view)
            parts.append(mask.expand(m, *shape).reshape(m, -1))
        return torch.cat(parts, dim=1).to(self.layout.dtype)


class FeatureGroups(Support):
    r"""One group of a feature mask per sample, drawn uniformly among the groups.

    Args:

        feature_mask (Tensor or tuple[Tensor, ...]): One integer tensor per
                    input, shaped like one input row (optionally with a leading
                    dimension of 1); coordinates with equal values form a group,
                    across all tensors of the tuple, as in Captum.
        layout (InputLayout): The inputs' shapes.
    """

    def __init__(
        self, feature_mask: Tensor | Sequence[Tensor], layout: InputLayout
    ) -> None:
        self.ids_flat = flat_group_ids(feature_mask, layout)
        self.groups = torch.unique(self.ids_flat)
        self.layout = layout

    def describe(self) -> str:
        return f"{self.groups.numel()} feature groups"

    def masks(self, noise: CounterNoise, streams: Tensor, samples: Tensor) -> Tensor:
        uniform = noise.uniform(SUPPORT, streams, samples, 1, torch.float64)[:, 0]
        count = self.groups.numel()
        pick = (uniform * count).long().clamp_(max=count - 1)
        chosen = self.groups[pick]
        return (self.ids_flat.unsqueeze(0) == chosen.unsqueeze(1)).to(self.layout.dtype)


def _block_extent(block: BlockSpec, shape: torch.Size, index: int) -> tuple[int, ...]:
    if isinstance(block, bool) or not isinstance(block, (int, tuple)):
        raise TypeError(
            f"block must be None, an int or a tuple of ints, not {block!r}."
        )
    if isinstance(block, int):
        if len(shape) == 1:
            extent: tuple[int, ...] = (block,)
        elif len(shape) in (2, 3):
            extent = (block, block)
        else:
            raise ValueError(
                f"input {index} has row shape {tuple(shape)}; an int block is only "
                "defined for 1-D, 2-D and 3-D rows: give a tuple over the trailing "
                "dimensions, or a feature_mask."
            )
    else:
        extent = block
    if len(extent) == 0 or len(extent) > len(shape):
        raise ValueError(
            f"block {block!r} has {len(extent)} dimensions but input {index} rows "
            f"have shape {tuple(shape)}."
        )
    trailing = tuple(shape[len(shape) - len(extent) :])
    for b, size in zip(extent, trailing):
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"block sizes must be positive ints, got {block!r}.")
        if b > size:
            raise ValueError(
                f"block {block!r} is larger than input {index}'s trailing "
                f"dimensions {trailing}; use a block of at most {trailing}."
            )
    return extent
