r"""Sampling designs: which direction each noise sample perturbs the input along.

A design draws, for a chunk of (row, sample) pairs, the noise directions ``U``
(one ``(d,)`` vector per pair, in the flat coordinates of
:class:`~captum_lr.estimation.layout.InputLayout`) and the weight ``W`` each
pair adds to a coordinate's normaliser. The estimator averages, per
coordinate, the samples
that perturbed it: ``g_j = sum_k delta_k U_kj / sigma_j / sum_k W_kj``.

Designs (``design=``):

- ``"gaussian"``: i.i.d. standard normal noise, the textbook likelihood-ratio
  estimator of the gradient of the Gaussian-smoothed function. Inside a
  block (``block=`` or ``feature_mask=``) only the block's coordinates get noise
  and only they count the sample.
- ``"orthogonal"``: orthonormal directions scaled to norm ``sqrt(d)``: a random
  sign flip of each coordinate times a DCT-II basis vector, the basis vectors
  taken in a random order per row. ``n <= d`` samples have expected cosine
  ``sqrt(n/d)`` with the gradient of a linear function; ``n = d`` is exact, so
  orthogonal designs draw at most ``d`` samples per row.
- ``"orthogonal-channels"``: for ``(C, H, W)`` image rows, orthonormal
  directions in two strata, those shared across the channels of each pixel
  and the channel contrasts; each row probes both, then spends its samples on
  the shared ones where they carry more of the output's change (photos:
  colour channels have correlated gradients), estimating the channel-mean
  gradient from a ``C``-th of the coordinates, and otherwise samples both in
  proportion (unbiased for the gradient). See :class:`ChannelStrata`.
- ``"coordinate"``: one coordinate per sample (finite differences), every
  coordinate of a row in a random order. Exact for linear functions once each
  coordinate has been visited.
- ``"auto"``: ``"coordinate"`` with exactly ``d`` samples (one sweep) when the
  row has at most ``n_samples`` coordinates; else, for whole inputs,
  ``"orthogonal-channels"`` when every input tensor has ``(C, H, W)`` rows with
  the same ``C >= 2`` and ``"orthogonal"`` otherwise; ``"gaussian"`` inside
  blocks.

Supports (where a sample's noise goes):

- whole input (``block=None``);
- :class:`Blocks`: one rectangle per input tensor over its trailing dimensions,
  at a uniformly random position; blocks may be cut by the border, so every
  coordinate is covered with the same probability; all leading dimensions
  (e.g. image channels) are inside the block and get independent noise; a
  list of block sizes is multi-scale (each sample draws one size uniformly);
- :class:`FeatureGroups`: one group of a Captum-style feature mask, drawn
  uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout, Space
from captum_lr.estimation.priors import flat_group_ids

DESIGNS = ("auto", "gaussian", "orthogonal", "orthogonal-channels", "coordinate")
WHOLE_INPUT_DESIGNS = ("orthogonal", "orthogonal-channels", "coordinate")
BlockSpec = int | tuple[int, ...] | list[int | tuple[int, ...]]


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
        self.block = block

    def describe(self) -> str:
        if len(self.scales) > 1:
            return f"blocks of {len(self.scales)} scales {self.scales}"
        return f"blocks {self.extents}"

    def masks(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        m = rows.shape[0]
        device = self.layout.device
        n_scales, n_dims = self._table.shape
        extra = 1 if n_scales > 1 else 0
        # one draw per pair, so the positions do not depend on how pairs are
        # split into forward batches
        uniform = torch.rand((m, n_dims + extra), generator=generator, device=device)
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


def image_channels(layout: InputLayout) -> int | None:
    r"""The channel count ``C`` when every input tensor has ``(C, H, W)`` rows
    with the same ``C >= 2``; None otherwise."""
    channels = {shape[0] if len(shape) == 3 else 0 for shape in layout.shapes}
    if len(channels) == 1:
        (c,) = channels
        if c >= 2:
            return int(c)
    return None


def _dct_rows(index: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    r"""Rows ``index`` of the orthonormal DCT-II basis of length ``size``."""
    device = index.device
    two_p_plus_1 = 2 * torch.arange(size, device=device) + 1
    # integer phase modulo a period keeps float precision for large sizes
    phase = (index.unsqueeze(1) * two_p_plus_1.unsqueeze(0)) % (4 * size)
    basis = torch.cos(phase.to(dtype) * (math.pi / (2 * size)))
    scale = torch.full(index.shape, math.sqrt(2.0 / size), dtype=dtype, device=device)
    scale.masked_fill_(index == 0, math.sqrt(1.0 / size))
    return basis * scale.unsqueeze(1)


def resolve_design(
    design: str,
    whole_input: bool,
    dim: int,
    n_samples: int,
    channels: int | None,
) -> tuple[str, int]:
    r"""
    The design ``"auto"`` stands for, and the samples per row it draws.

    Args:

        design (str): One of :data:`DESIGNS`.
        whole_input (bool): Whether each sample perturbs the whole input (no
                    blocks or feature groups).
        dim (int): Coordinates per row of the space directions live in.
        n_samples (int): Requested noise samples per row.
        channels (int, optional): The common channel count of ``(C, H, W)``
                    image rows (:func:`image_channels`), None if not images.

    Returns:
        *tuple[str, int]*: the concrete design and its samples per row.
    """
    if design == "auto":
        if dim <= n_samples:
            return "coordinate", dim
        if not whole_input:
            return "gaussian", n_samples
        return ("orthogonal-channels" if channels else "orthogonal"), n_samples
    if design == "orthogonal-channels" and channels is None:
        raise ValueError(
            "design='orthogonal-channels' needs every input tensor to have "
            "(C, H, W) rows with the same C >= 2 and no prior; use "
            "design='orthogonal' for other inputs."
        )
    if design in ("orthogonal", "orthogonal-channels"):
        # a complete orthonormal basis is exact: more samples add nothing
        return design, min(n_samples, dim)
    return design, n_samples


class SamplingPlan:
    r"""The directions of one estimator call: a design, a support and a budget.

    Args:

        design (str): One of :data:`DESIGNS`.
        support (Support): Where each sample's noise goes.
        space (Space): The coordinates directions live in (the flat inputs, or
                    a prior's subspace).
        n_samples (int): Noise samples per input row.
        generator (torch.Generator): The random source, on the inputs' device.
        layout (InputLayout, optional): The inputs' shapes when ``space`` is
                    the flat inputs (None for a prior's subspace): needed by
                    ``"orthogonal-channels"``.
                    Default: None
    """

    def __init__(
        self,
        design: str,
        support: Support,
        space: Space,
        n_samples: int,
        generator: torch.Generator,
        layout: InputLayout | None = None,
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
        channels = image_channels(layout) if layout is not None else None
        design, n_samples = resolve_design(
            design, type(support) is Support, d, n_samples, channels
        )
        if design in WHOLE_INPUT_DESIGNS and type(support) is not Support:
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
        self.levels = 1
        r"""Strata of the design, each with its own running sum in the estimator."""
        self.probe_samples = 0
        r"""Samples per row after which :meth:`adapt` must be called (0: never)."""
        if design == "orthogonal-channels":
            self.strata = ChannelStrata(
                layout,
                space,
                n_samples,
                channels,
                generator,  # type: ignore[arg-type]
            )
            self.levels, self.probe_samples = 2, self.strata.probe_samples
        if design == "orthogonal":
            self.signs = (
                torch.randint(0, 2, (batch, d), generator=generator, device=device)
                .to(space.dtype)
                .mul_(2)
                .sub_(1)
            )

    @property
    def finite_population(self) -> float:
        r"""The variance factor of sampling without replacement (1 if with)."""
        n, d = self.n_samples, self.space.dim
        if self.design == "orthogonal" and n <= d:
            return 1.0 - n / d
        return 1.0

    def level(self, samples: Tensor, rows: Tensor) -> Tensor | None:
        r"""The stratum of each pair (None for single-stratum designs)."""
        if self.levels == 1:
            return None
        return self.strata.level(samples, rows)

    def combine(
        self, sums: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        r"""The estimate (times sigma) and its variance from the per-stratum
        running sums of a multi-stratum design (see
        :meth:`ChannelStrata.combine`)."""
        return self.strata.combine(sums, squares)

    def contrast_scale(self) -> Tensor:
        r"""Per row, the factor of the channel contrasts in the expectation of
        a multi-stratum design's estimate (see
        :meth:`ChannelStrata.contrast_scale`)."""
        return self.strata.contrast_scale()

    def adapt(self, energy: Tensor) -> None:
        r"""Lets the design use its first :attr:`probe_samples` samples per row.

        Args:

            energy (Tensor): ``(levels, rows)`` sums of the squared output
                        changes of those samples, per stratum.
        """
        self.strata.adapt(energy)

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
        if self.design == "orthogonal-channels":
            return self.strata.directions(samples, rows), None
        column = samples % self.order.shape[1]
        picked = self.order[rows, column]
        if self.design == "coordinate":
            u = torch.zeros((m, d), device=device, dtype=dtype)
            u.scatter_(1, picked.unsqueeze(1), 1.0)
            return u, u
        u = _dct_rows(picked, d, dtype) * math.sqrt(d)
        return u * self.signs[rows], None


class ChannelStrata:
    r"""
    The ``"orthogonal-channels"`` design: an orthonormal basis of ``(C, H, W)``
    images in two strata, the ``m = H W`` directions shared across channels
    (a randomly signed DCT over pixels, constant over channels) and the
    ``(C - 1) m`` channel contrasts (the DCT over channels without its constant,
    times the same pixel basis), each stratum sampled without replacement.

    Each row first probes both strata with ``q`` directions each and compares
    the mean squared output change: where the channel-shared directions carry
    more (photos, whose colour channels have correlated gradients) it spends
    the rest of its samples on them (*coarse* rows); otherwise it samples both
    strata in proportion to their dimensions (*full* rows).

    The estimate is, per stratum, ``w_l sum_k (g . v_k) v_k`` over its ``k_l``
    sampled unit directions: full rows use ``w_l = D_l / k_l`` (unbiased for the
    gradient); coarse rows use ``m / k_0`` for the shared stratum (unbiased for
    the channel-mean gradient) and ``1`` for the contrasts (the projection on
    the directions sampled: ``k_1 / ((C - 1) m)`` of the contrasts in
    expectation, which keeps their error below leaving them out). All samples
    of a complete basis (``n = d``) give the exact gradient.

    Args:

        layout (InputLayout): The inputs' shapes.
        space (Space): The flat inputs.
        n_samples (int): Samples per row (at most ``d``).
        channels (int): ``C``.
        generator (torch.Generator): The random source.
    """

    def __init__(
        self,
        layout: InputLayout,
        space: Space,
        n_samples: int,
        channels: int,
        generator: torch.Generator,
    ) -> None:
        batch, d, device = space.batch_size, space.dim, space.device
        m = d // channels
        self.n, self.d, self.m, self.channels = n_samples, d, m, channels
        self.dtype = space.dtype
        keys = torch.rand((batch, d), generator=generator, device=device)
        self.coarse_order = torch.argsort(keys[:, :m], dim=1)
        self.fine_order = torch.argsort(keys[:, m:], dim=1) + m
        self.signs = (
            torch.randint(0, 2, (batch, m), generator=generator, device=device)
            .to(space.dtype)
            .mul_(2)
            .sub_(1)
        )
        self.pixel_ranges = _pixel_ranges(layout)
        q = min(PROBES, n_samples // 16, m, d - m)
        self.q = q if q >= 2 else 0
        self.probe_samples = 2 * self.q
        # until adapt(): every row coarse
        self.coarse = torch.ones(batch, dtype=torch.bool, device=device)
        self.k0 = torch.full((batch,), min(n_samples - self.q, m), device=device)

    def adapt(self, energy: Tensor) -> None:
        r"""Decides, per row, coarse or full from the probes' ``(2, rows)``
        squared output changes."""
        n, m, d, q = self.n, self.m, self.d, self.q
        self.coarse = energy[0] > energy[1]
        proportional = min(max(round(n * m / d), q), m)
        self.k0 = torch.where(
            self.coarse,
            torch.full_like(self.k0, min(n - q, m)),
            torch.full_like(self.k0, proportional),
        )

    def _basis_index(self, samples: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        q = self.q
        t = samples - 2 * q
        k0 = self.k0[rows]
        in_probe = t < 0
        level = torch.where(in_probe, samples % 2, (t >= k0 - q).long())
        position = torch.where(
            in_probe, samples // 2, torch.where(level == 0, q + t, t - (k0 - q) + q)
        )
        position = position.clamp(max=self.d - self.m - 1)
        coarse = self.coarse_order[rows, position.clamp(max=self.m - 1)]
        fine = self.fine_order[rows, position]
        return level, torch.where(level == 0, coarse, fine)

    def level(self, samples: Tensor, rows: Tensor) -> Tensor:
        r"""0 for channel-shared directions, 1 for contrasts."""
        return self._basis_index(samples, rows)[0]

    def factors(self) -> Tensor:
        r"""``(2, rows)`` weights ``w_l / d`` of each stratum's sum of
        ``delta_k u_k / sigma`` (the directions have norm ``sqrt(d)``)."""
        k0 = self.k0.to(self.dtype)
        k1 = self.n - k0
        full1 = (self.d - self.m) / k1.clamp_min(1)
        w1 = torch.where(self.coarse, torch.ones_like(k0), full1)
        return torch.stack([self.m / k0.clamp_min(1), w1]) / self.d

    def combine(
        self, sums: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        r"""
        The estimate from the strata's running sums.

        Args:

            sums (Tensor): ``(2 rows, d)`` sums of ``delta_k u_k`` per stratum
                        (stratum ``l`` of row ``r`` at ``l rows + r``).
            squares (Tensor, optional): The same sums of their squares, for
                        the variance.

        Returns:
            The ``(rows, d)`` estimate times sigma and, with ``squares``, its
            variance times sigma squared (sampling without replacement within
            each stratum; 0 for a complete stratum, inf where a stratum has a
            single sample).
        """
        rows = self.k0.shape[0]
        sums = sums.view(2, rows, -1)
        factors = self.factors().unsqueeze(2)
        estimate = (sums * factors).sum(0)
        if squares is None:
            return estimate, None
        k0 = self.k0.to(self.dtype)
        k = torch.stack([k0, self.n - k0]).unsqueeze(2)
        sizes = torch.tensor([self.m, self.d - self.m], dtype=self.dtype)
        sizes = sizes.to(k.device).view(2, 1, 1)
        squares = squares.view(2, rows, -1)
        spread = (squares - sums.square() / k.clamp_min(1)).clamp_min(0)
        spread = spread / (k - 1).clamp_min(1)
        var_sum = k * spread * (1 - k / sizes)
        var_sum = torch.where((k < 1.5) & (k > 0.5) & (k < sizes), torch.inf, var_sum)
        return estimate, (var_sum * factors.square()).sum(0)

    def contrast_scale(self) -> Tensor:
        r"""``(rows,)`` the factor of the channel contrasts in the estimate's
        expectation: 1 for full rows, ``k_1 / ((C - 1) m)`` for coarse rows."""
        k1 = self.n - self.k0.to(self.dtype)
        return torch.where(self.coarse, k1 / (self.d - self.m), torch.ones_like(k1))

    def directions(self, samples: Tensor, rows: Tensor) -> Tensor:
        r"""``(pairs, d)`` directions of norm ``sqrt(d)``."""
        m, c = self.m, self.channels
        level, picked = self._basis_index(samples, rows)
        pixel_basis = _dct_rows(picked % m, m, self.dtype) * self.signs[rows]
        channel_level = torch.where(level == 0, 0, 1 + (picked - m) // m)
        channel_basis = _dct_rows(channel_level, c, self.dtype)
        parts = []
        for start, stop in self.pixel_ranges:
            block = channel_basis.unsqueeze(2) * pixel_basis[:, start:stop].unsqueeze(1)
            parts.append(block.reshape(picked.shape[0], -1))
        return torch.cat(parts, dim=1) * math.sqrt(self.d)


PROBES = 64
r"""The most probe directions per stratum of ``"orthogonal-channels"`` (fewer
for small ``n_samples``: ``n_samples // 16``, none below 32 samples)."""


def _pixel_ranges(layout: InputLayout) -> tuple[tuple[int, int], ...]:
    r"""Each input tensor's range in the concatenated pixel index."""
    ranges, start = [], 0
    for shape in layout.shapes:
        stop = start + shape[-2] * shape[-1]
        ranges.append((start, stop))
        start = stop
    return tuple(ranges)
