r"""The ``"orthogonal-frequency"`` design: DCT directions in frequency strata,
each row spending its samples on the bands where the output changes most."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout, Space
from captum_lr.estimation.strata import dct_rows
from captum_lr.estimation.streams import CounterNoise

FREQUENCY_ORDER = 7
r"""The noise purpose of the strata's basis orders (after those of
:mod:`captum_lr.estimation.streams`)."""

RINGS = 12
r"""Frequency rings per channel stratum (:func:`rings_for`): ring ``i`` of
``R`` holds the 2D DCT frequencies ``(k_y, k_x)`` with
``i <= R max(k_y / H, k_x / W) < i + 1``."""

MAX_PROBES = 8
r"""The most probe directions per stratum. A row probes every stratum with
``q = min(MAX_PROBES, n_samples // (PROBE_SHARE * strata))`` directions (about
a tenth of its samples); below 2 it does not probe and samples the whole basis
as one stratum."""

PROBE_SHARE = 10

SMOOTHING = 0.5
r"""The weight of each neighbouring ring in a ring's smoothed probe density
(ranking only: the gradient's spectrum is smooth in frequency, a few probes
per ring are not)."""


class FrequencyStrata:
    r"""
    The orthonormal DCT basis of a ``(C, H, W)`` image (a DCT over channels
    times a 2D DCT over pixels, no sign flips) in strata: the channel-shared
    directions and the channel contrasts (``C >= 2``), each cut into
    :data:`RINGS` rings of spatial frequency. Each stratum's directions are
    taken in a random order.

    Each row probes every stratum with its first ``q`` directions, ranks the
    strata by the squared output change per probe (smoothed over neighbouring
    rings) and spends the rest of its samples on them in that order, filling
    one before the next (*greedy*): every stratum it reaches is complete but
    the last (the *marginal* one). For efficientnet-lite0 on photos at 112 px
    the input gradient's energy per direction peaks in the middle of the
    spectrum (not at low frequencies), in the channel-shared directions
    (``benchmarks/frequency.py``).

    Stratum ``b`` (``D_b`` directions, ``k_b - q`` later samples, a uniform
    sample of the ``D_b - q`` the probes left, whatever the probes decided)
    is sampled at the rate ``f_b = (k_b - q) / (D_b - q)``. Its probes count
    at weight ``s_b = f_b / max_b f_b`` and every later sample at weight
    ``1 / max_b f_b``, so the estimate is unbiased, given the decision, for
    ``sum_b s_b P_b g`` (:meth:`band_scale`; :meth:`project`): the gradient's
    projection on the complete strata, plus ``s_b`` times that on the marginal
    one (``s_b = 1`` when no stratum is complete). All later samples weigh the
    same: for a linear function the estimate is a multiple of the gradient's
    projection on the sampled directions, whose cosine with the gradient is
    the square root of the energy they capture (no weighting captures more).
    All samples of a complete basis (``n = d``) give the exact gradient.

    Args:

        layout (InputLayout): The inputs' shapes: one tensor of ``(C, H, W)``
                    rows.
        space (Space): The flat inputs.
        n_samples (int): Samples per row (at most ``d``).
        noise (CounterNoise): The call's random numbers.
        streams (Tensor): The distinct noise streams of the call.
        stream_index (Tensor): ``(rows,)`` each row's index into ``streams``.
    """

    def __init__(
        self,
        layout: InputLayout,
        space: Space,
        n_samples: int,
        noise: CounterNoise,
        streams: Tensor,
        stream_index: Tensor,
    ) -> None:
        self.shape = image_shape(layout)
        c, h, w = self.shape
        self.n, self.d, self.dtype = n_samples, space.dim, space.dtype
        self.stream_index = stream_index
        self.rings = rings_for(h, w)
        stratum = stratum_ids(self.shape, self.rings, space.device)
        sizes = torch.bincount(stratum)
        q = probes_per_stratum(n_samples, sizes)
        if q == 0:  # no probes: the whole basis is one stratum
            stratum, sizes = torch.zeros_like(stratum), sizes.sum().reshape(1)
        self.stratum, self.sizes, self.q = stratum, sizes, q
        self.probe_samples = q * sizes.numel()
        self.order = _stratified_order(noise, streams, stratum)
        self.starts = torch.cumsum(sizes, 0) - sizes
        self.matrices = tuple(
            dct_rows(torch.arange(k, device=space.device), k, space.dtype)
            for k in self.shape
        )
        rows = space.batch_size
        self.density = torch.ones((rows, sizes.numel()), dtype=space.dtype)
        self.density = self.density.to(space.device)
        self.measured = False
        self._decide(self.density)

    def adapt(self, probe_sums: Tensor) -> None:
        r"""Ranks the strata of each row from its probes' ``(rows, d)`` sum of
        ``delta_k u_k`` (the probes are basis directions, so each one's output
        change is its coefficient in that sum)."""
        coefficients = self.transform(probe_sums)
        energy = torch.zeros_like(self.density)
        energy.index_add_(1, self.stratum, coefficients.square())
        self.density, self.measured = energy / self.q, True
        self._decide(_smooth(self.density, self.rings))

    def _decide(self, rank_by: Tensor) -> None:
        r"""Each row's greedy allocation: its strata in decreasing ``rank_by``,
        each filled before the next."""
        self.rank = torch.argsort(rank_by, dim=1, descending=True, stable=True)
        budget = self.n - self.probe_samples
        self.later = greedy_allocation(self.rank, self.sizes - self.q, budget)
        later_sorted = self.later.gather(1, self.rank)
        zero = torch.zeros_like(later_sorted[:, :1])
        self.cumulative = torch.cat([zero, later_sorted.cumsum(1)], dim=1)

    def band_scale(self) -> Tensor:
        r"""``(rows, strata)`` the factor ``s_b`` of each stratum's projection
        in the estimate's expectation: 1 for the complete strata, the marginal
        one's sampling rate over the highest rate, 0 for the strata its later
        samples did not reach."""
        return _scales(self.later.to(self.dtype), self.sizes - self.q)[0]

    def sample_weights(self) -> tuple[Tensor, Tensor]:
        r"""The weight of each sample in :meth:`combine`'s estimate: ``(rows,
        d)`` a probe's, by the basis coefficient it measures (its stratum's
        ``s_b / d``), and ``(rows, 1)`` every later sample's (``1 / (d max_b
        f_b)``)."""
        scale, weight = _scales(self.later.to(self.dtype), self.sizes - self.q)
        probe = (scale / self.d).index_select(1, self.stratum)
        return probe, (weight / self.d).unsqueeze(1)

    def energy(self) -> Tensor:
        r"""``(rows,)`` the gradient's squared norm (times sigma squared) the
        probes imply: each stratum's mean squared probe coefficient times its
        size (before :meth:`adapt`: 0)."""
        if not self.measured:
            return torch.zeros_like(self.density[:, 0])
        sizes = self.sizes.to(self.dtype)
        return (self.density * sizes).sum(1) / self.d**2

    def transform(self, flat: Tensor, inverse: bool = False) -> Tensor:
        r"""``(rows, d)`` coefficients in the design's basis (or, ``inverse``,
        the flat vectors with these coefficients)."""
        mc, mh, mw = (m.t() if inverse else m for m in self.matrices)
        x = flat.reshape(flat.shape[0], *self.shape)
        out = torch.einsum("rchw,ac,bh,ew->rabe", x, mc, mh, mw)
        return out.reshape(flat.shape[0], -1)

    def project(self, flat: Tensor) -> Tensor:
        r"""``(rows, d)``: what the last call estimated of the gradients
        ``flat``, ``sum_b s_b P_b g`` (:meth:`band_scale`)."""
        scale = self.band_scale().to(flat.dtype).index_select(1, self.stratum)
        return self.transform(self.transform(flat) * scale, inverse=True)

    def combine(
        self, sums: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        r"""
        The estimate from the running sums.

        Args:

            sums (Tensor): ``(3 rows, d)`` sums of ``delta_k u_k``: the probes,
                        the later samples of complete strata, those of the
                        marginal stratum (level ``l`` of row ``r`` at
                        ``l rows + r``).
            squares (Tensor, optional): The same sums of their squares, for
                        the variance.

        Returns:
            The ``(rows, d)`` estimate times sigma and, with ``squares``, its
            variance times sigma squared, from the marginal stratum's later
            samples (sampled without replacement; inf where it has a single
            one).
        """
        rows = self.later.shape[0]
        sums = sums.view(3, rows, -1)
        probe_scale, weight = self.sample_weights()
        probes = self.transform(self.transform(sums[0]) * probe_scale, inverse=True)
        estimate = probes + (sums[1] + sums[2]) * weight
        if squares is None:
            return estimate, None
        later, population = self._marginal()
        later, population = later.unsqueeze(1), population.unsqueeze(1)
        total, square = sums[2], squares.view(3, rows, -1)[2]
        spread = (square - total.square() / later.clamp_min(1)).clamp_min(0)
        spread = spread / (later - 1).clamp_min(1)
        var_sum = later * spread * (1 - later / population.clamp_min(1))
        var_sum = torch.where((later == 1) & (population > 1), torch.inf, var_sum)
        return estimate, var_sum * weight.square()

    def _marginal(self) -> tuple[Tensor, Tensor]:
        r"""``(rows,)`` the later samples of each row's marginal stratum and
        the directions they were drawn from (0 and 1 without one)."""
        population = (self.sizes - self.q).to(self.dtype)
        later = self.later.to(self.dtype)
        partial = (later > 0) & (later < population)
        got = torch.where(partial, later, 0.0).sum(1)
        size = torch.where(partial, population, 0.0).sum(1)
        return got, torch.where(size > 0, size, 1.0)

    def expected_cosine(self, n: int | None = None) -> Tensor:
        r"""
        Per row, the expected cosine of the estimate with the gradient of a
        linear function, from each stratum's energy as the probes measured
        it (in proportion to the strata's sizes without probes), with the
        row's ranking of the strata: ``A / sqrt(|g|^2 B)``, where ``A`` and
        ``B`` sum each stratum's energy ``E_b`` times its sampled share at
        weight 1 and squared weight.

        Args:

            n (int, optional): Samples per row to evaluate it at (the call's by
                        default).
                        Default: None
        """
        sizes = self.sizes.to(self.dtype)
        q = self.q if n is None else probes_per_stratum(n, self.sizes)
        if n is not None and (q == 0 or not self.measured):  # uniform sampling
            figure = math.sqrt(min(n, self.d) / self.d)
            return torch.full_like(self.density[:, 0], figure)
        later = self.later
        if n is not None:
            budget = n - q * self.sizes.numel()
            later = greedy_allocation(self.rank, self.sizes - q, budget)
        later = later.to(self.dtype)
        energy = self.density * sizes if self.measured else sizes.expand_as(later)
        scale, weight = _scales(later, self.sizes - q)
        weight = weight.unsqueeze(1)
        share = energy / sizes
        aligned = (share * (scale * q + weight * later)).sum(1)
        spent = (share * (scale.square() * q + weight.square() * later)).sum(1)
        total = energy.sum(1).clamp_min(1e-30)
        return (aligned / (total * spent).clamp_min(1e-30).sqrt()).clamp(0, 1)

    def directions(self, samples: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        r"""Each pair's level (0: probe; 1: later sample of a complete
        stratum; 2: of the marginal one) and its ``(pairs, d)`` direction of
        norm ``sqrt(d)``."""
        strata, q = self.sizes.numel(), self.q
        t = samples - q * strata
        probing = t < 0
        cumulative = self.cumulative.index_select(0, rows)
        slot = torch.searchsorted(cumulative, t.clamp_min(0).unsqueeze(1), right=True)
        slot = (slot - 1).clamp(max=strata - 1)
        ranked = self.rank.index_select(0, rows).gather(1, slot).squeeze(1)
        stratum = torch.where(probing, self._probed(samples), ranked)
        start = cumulative.gather(1, slot).squeeze(1)
        position = torch.where(probing, samples // strata, q + t - start)
        table = self.stream_index.index_select(0, rows)
        picked = self.order[table, self.starts[stratum] + position]
        later = self.later.index_select(0, rows).gather(1, stratum.unsqueeze(1))
        complete = later.squeeze(1) == self.sizes[stratum] - q
        level = torch.where(probing, 0, torch.where(complete, 1, 2))
        return level, self.basis(picked)

    def _probed(self, samples: Tensor) -> Tensor:
        r"""The stratum each probe sample measures: every stratum once per
        round, the first ones spread over the spectrum (a stride coprime to
        the strata's count), so that the first samples, which also choose the
        noise scale (``sigma="auto"``), see the curvature of the directions
        the row will spend its samples on, not only the lowest rings."""
        strata = self.sizes.numel()
        stride = next(k for k in (7, 5, 11, 13, 1) if math.gcd(k, strata) == 1)
        return (samples % strata) * stride % strata

    def basis(self, index: Tensor) -> Tensor:
        r"""``(pairs, d)`` the basis directions ``index``, of norm ``sqrt(d)``."""
        c, h, w = self.shape
        parts = (index // (h * w), (index // w) % h, index % w)
        vc, vh, vw = (
            dct_rows(k, size, self.dtype) for k, size in zip(parts, self.shape)
        )
        u = vc[:, :, None, None] * vh[:, None, :, None] * vw[:, None, None, :]
        return u.reshape(index.shape[0], -1) * math.sqrt(self.d)


def image_shape(layout: InputLayout) -> tuple[int, int, int]:
    r"""The ``(C, H, W)`` row shape of a single image input; a ValueError
    otherwise."""
    shapes = layout.shapes
    if len(shapes) != 1 or len(shapes[0]) != 3:
        raise ValueError(
            "design='orthogonal-frequency' needs a single input tensor with "
            f"(C, H, W) rows and no prior, not rows of shapes {list(shapes)}; "
            "use design='orthogonal' for other inputs."
        )
    c, h, w = shapes[0]
    return int(c), int(h), int(w)


def rings_for(height: int, width: int) -> int:
    r"""Rings per channel stratum: :data:`RINGS`, fewer for images under 48
    pixels a side (each ring at least 4 frequencies wide)."""
    return max(1, min(RINGS, height // 4, width // 4))


def stratum_ids(
    shape: tuple[int, int, int], rings: int, device: torch.device
) -> Tensor:
    r"""``(d,)`` the stratum of each basis direction (flat ``(c, k_y, k_x)``
    index): ``rings * group + ring``, group 0 for the channel-shared
    directions (``c = 0``) and 1 for the contrasts."""
    c, h, w = shape
    ky = torch.arange(h, device=device).unsqueeze(1) * rings // h
    kx = torch.arange(w, device=device).unsqueeze(0) * rings // w
    ring = torch.maximum(ky, kx).clamp(max=rings - 1)
    group = (torch.arange(c, device=device) > 0).long()
    return (group[:, None, None] * rings + ring.unsqueeze(0)).reshape(-1)


def probes_per_stratum(n: int, sizes: Tensor) -> int:
    r"""Probe directions per stratum at ``n`` samples (0: no probes)."""
    strata = sizes.numel()
    q = min(MAX_PROBES, n // (PROBE_SHARE * strata), int(sizes.min()) - 1)
    return q if q >= 2 and strata > 1 else 0


def greedy_allocation(rank: Tensor, capacity: Tensor, budget: int) -> Tensor:
    r"""``(rows, strata)`` later samples per stratum: ``budget`` of them,
    filling the strata in each row's order ``rank`` up to ``capacity`` (their
    sizes less the probes)."""
    cap = capacity.index_select(0, rank.reshape(-1)).view_as(rank)
    before = cap.cumsum(1) - cap
    sorted_later = torch.minimum((budget - before).clamp_min(0), cap)
    return torch.zeros_like(sorted_later).scatter(1, rank, sorted_later)


def _scales(later: Tensor, capacity: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(rows, strata)`` the strata's factors ``s_b = f_b / max f`` and
    ``(rows,)`` the later samples' weight ``1 / max f``, from the sampling
    rates ``f_b = later_b / capacity_b``."""
    rate = later / capacity.clamp_min(1).to(later.dtype)
    top = rate.max(1).values.clamp_min(1e-30)
    return rate / top.unsqueeze(1), 1 / top


def _smooth(density: Tensor, rings: int) -> Tensor:
    r"""``(rows, strata)`` each ring's density averaged with its neighbouring
    rings of the same channel group at weight :data:`SMOOTHING`."""
    rows, strata = density.shape
    if strata % rings:
        return density
    x = density.view(rows, -1, rings)
    total, weight = x.clone(), torch.ones_like(x[:1, :1])
    weight = weight.expand(1, 1, rings).clone()
    total[..., 1:] += SMOOTHING * x[..., :-1]
    total[..., :-1] += SMOOTHING * x[..., 1:]
    weight[..., 1:] += SMOOTHING
    weight[..., :-1] += SMOOTHING
    return (total / weight).reshape(rows, strata)


def _stratified_order(noise: CounterNoise, streams: Tensor, stratum: Tensor) -> Tensor:
    r"""``(streams, d)`` per stream, the basis directions grouped by stratum
    (in stratum order), each stratum's in a random order."""
    permutation = noise.permutation(streams, stratum.numel(), FREQUENCY_ORDER)
    grouped = torch.argsort(stratum[permutation], dim=1, stable=True)
    return permutation.gather(1, grouped)
