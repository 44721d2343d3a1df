r"""Sampling designs: which direction each noise sample perturbs the input along.

A design draws, for a chunk of (row, sample) pairs, the noise directions ``U``
(one ``(d,)`` vector per pair, in the flat coordinates of
:class:`~captum_lr.layout.InputLayout`) and the weight ``W`` each pair adds to a
coordinate's normaliser. The estimator averages, per coordinate, the samples
that perturbed it: ``g_j = sum_k delta_k U_kj / sigma_j / sum_k W_kj``.

Designs (``design=``):

- ``"gaussian"``: i.i.d. standard normal noise, the textbook likelihood-ratio
  estimator of the gradient of the Gaussian-smoothed function. Inside a
  block (``block=`` or ``feature_mask=``) only the block's coordinates get noise
  and only they count the sample.
- ``"orthogonal"``: orthonormal directions scaled to norm ``sqrt(d)``: a random
  sign flip of each coordinate times a DCT-II basis vector, the basis vectors
  taken in a random order per row. ``n <= d`` samples have expected cosine
  ``sqrt(n/d)`` with the gradient of a linear function; ``n = d`` is exact.
- ``"coordinate"``: one coordinate per sample (finite differences), every
  coordinate of a row in a random order. Exact for linear functions once each
  coordinate has been visited.
- ``"auto"``: ``"coordinate"`` with exactly ``d`` samples (one sweep) when the
  row has at most ``n_samples`` coordinates, else ``"orthogonal"`` for whole
  inputs and ``"gaussian"`` inside blocks.

Supports (where a sample's noise goes):

- whole input (``block=None``);
- :class:`Blocks`: one rectangle per input tensor over its trailing dimensions,
  at a uniformly random position; blocks may be cut by the border, so every
  coordinate is covered with the same probability; all leading dimensions
  (e.g. image channels) are inside the block and get independent noise;
- :class:`FeatureGroups`: one group of a Captum-style feature mask, drawn
  uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from captum_lr.layout import InputLayout, Space
from captum_lr.priors import flat_group_ids

DESIGNS = ("auto", "gaussian", "orthogonal", "coordinate")
BlockSpec = int | tuple[int, ...]


class Support:
    r"""Perturbs every coordinate of the input in every sample."""

    def masks(self, rows: Tensor, generator: torch.Generator) -> Tensor | None:
        r"""Returns ``(m, d)`` 0/1 masks for the sampled pairs, or None for all."""
        return None

    def describe(self) -> str:
        return "whole input"


class Blocks(Support):
    r"""One randomly placed rectangle per input tensor per sample.

    Args:

        block (int or tuple[int, ...]): A tuple gives the block's extent over the
                    trailing dimensions of each input tensor (all leading
                    non-batch dimensions are inside the block). An int is a run
                    of that many features for 1-D rows and a square over the
                    last two dimensions for 2-D and 3-D rows (e.g. ``(C, H, W)``
                    images: a ``block x block`` patch in every channel).
        layout (InputLayout): The inputs' shapes.
    """

    def __init__(self, block: BlockSpec, layout: InputLayout) -> None:
        self.layout = layout
        self.extents = tuple(
            _block_extent(block, shape, i) for i, shape in enumerate(layout.shapes)
        )
        self.block = block

    def describe(self) -> str:
        return f"blocks {self.extents}"

    def masks(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        m = rows.shape[0]
        device = self.layout.device
        n_dims = sum(len(extent) for extent in self.extents)
        # one draw per pair, so the positions do not depend on how pairs are
        # split into forward batches
        uniform = torch.rand((m, n_dims), generator=generator, device=device)
        parts, column = [], 0
        for shape, extent in zip(self.layout.shapes, self.extents):
            k = len(extent)
            mask = torch.ones((m,) + (1,) * len(shape), dtype=torch.bool, device=device)
            for t, b in enumerate(extent):
                axis = len(shape) - k + t
                size = shape[axis]
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

    def masks(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        pick = torch.randint(
            0,
            self.groups.numel(),
            (rows.shape[0],),
            generator=generator,
            device=self.layout.device,
        )
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


class SamplingPlan:
    r"""The directions of one estimator call: a design, a support and a budget.

    Args:

        design (str): One of ``"auto"``, ``"gaussian"``, ``"orthogonal"``,
                    ``"coordinate"``.
        support (Support): Where each sample's noise goes.
        space (Space): The coordinates directions live in (the flat inputs, or
                    a prior's subspace).
        n_samples (int): Noise samples per input row.
        generator (torch.Generator): The random source, on the inputs' device.
    """

    def __init__(
        self,
        design: str,
        support: Support,
        space: Space,
        n_samples: int,
        generator: torch.Generator,
    ) -> None:
        d = space.dim
        self.space = space
        self.support = support
        self.generator = generator
        # Block positions get their own stream, so that the noise and the
        # positions of a pair do not depend on how pairs are batched.
        self.support_generator = torch.Generator(device=space.device).manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=generator, device=space.device))
        )
        if design == "auto":
            if d <= n_samples:
                design, n_samples = "coordinate", d
            elif type(support) is Support:
                design = "orthogonal"
            else:
                design = "gaussian"
        if design in ("orthogonal", "coordinate") and type(support) is not Support:
            raise ValueError(
                f"design={design!r} perturbs whole inputs and cannot be combined "
                f"with {support.describe()}; use design='gaussian' (or 'auto') "
                "with block or feature_mask."
            )
        self.design = design
        self.n_samples = n_samples
        self.weighted = design == "coordinate" or type(support) is not Support
        r"""Whether coordinates count only the samples that perturbed them."""
        batch, device = space.batch_size, space.device
        if design in ("orthogonal", "coordinate"):
            width = min(n_samples, d)
            if design == "coordinate" and n_samples >= d:
                order = torch.arange(d, device=device).expand(batch, d)
            else:
                keys = torch.rand((batch, d), generator=generator, device=device)
                order = torch.argsort(keys, dim=1)[:, :width]
            self.order = order
        if design == "orthogonal":
            self.signs = (
                torch.randint(0, 2, (batch, d), generator=generator, device=device)
                .to(space.dtype)
                .mul_(2)
                .sub_(1)
            )
            self.two_j_plus_1 = 2 * torch.arange(d, device=device) + 1

    @property
    def finite_population(self) -> float:
        r"""The variance factor of sampling without replacement (1 if with)."""
        if self.design == "orthogonal" and self.n_samples <= self.space.dim:
            return 1.0 - self.n_samples / self.space.dim
        return 1.0

    def draw(self, samples: Tensor, rows: Tensor) -> tuple[Tensor, Tensor | None]:
        r"""Directions ``U`` and normaliser weights ``W`` for a chunk of pairs.

        Args:

            samples (Tensor): ``(m,)`` sample index of each pair (on device).
            rows (Tensor): ``(m,)`` input row of each pair (on device).

        Returns:
            ``U`` of shape ``(m, d)`` and ``W`` of shape ``(m, d)``, or None when
            each pair counts once for every coordinate.
        """
        m, d = rows.shape[0], self.space.dim
        dtype, device = self.space.dtype, self.space.device
        if self.design == "gaussian":
            mask = self.support.masks(rows, self.support_generator)
            u = torch.randn(
                (m, d), generator=self.generator, device=device, dtype=dtype
            )
            return (u if mask is None else u * mask), mask
        column = samples % self.order.shape[1]
        picked = self.order[rows, column]
        if self.design == "coordinate":
            u = torch.zeros((m, d), device=device, dtype=dtype)
            u.scatter_(1, picked.unsqueeze(1), 1.0)
            return u, u
        phase = (picked.unsqueeze(1) * self.two_j_plus_1.unsqueeze(0)) % (4 * d)
        basis = torch.cos(phase.to(dtype) * (math.pi / (2 * d)))
        scale = torch.full(picked.shape, math.sqrt(2.0), dtype=dtype, device=device)
        scale.masked_fill_(picked == 0, 1.0)
        return basis * scale.unsqueeze(1) * self.signs[rows], None
