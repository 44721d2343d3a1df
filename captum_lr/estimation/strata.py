r"""The ``"orthogonal-channels"`` design: channel-shared directions and channel
contrasts, each row spending its samples where the output changes more."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout, Space
from captum_lr.estimation.streams import COARSE_ORDER, FINE_ORDER, CounterNoise

PROBES = 64
r"""The most probe directions per stratum of ``"orthogonal-channels"`` (fewer
for small ``n_samples``: ``n_samples // 16``, none below 32 samples)."""


class ChannelStrata:
    r"""
    An orthonormal basis of ``(C, H, W)`` images in two strata: the ``m = H W``
    directions shared across channels (a randomly signed DCT over pixels,
    constant over channels) and the ``(C - 1) m`` channel contrasts (the DCT
    over channels without its constant, times the same pixel basis), each
    stratum sampled without replacement in a random order.

    Each row first probes both strata with ``q`` directions each and compares
    their squared output changes: where the channel-shared directions carry
    more (photos, whose colour channels have correlated gradients) it spends
    the rest of its samples on them (*coarse* rows); otherwise it samples both
    strata in proportion to their dimensions (*full* rows).

    Stratum ``l`` (``D_l`` directions, ``k_l`` of them sampled, the first
    ``q`` being the probes) estimates ``s_l`` times the gradient's projection
    on it: the probes count once, at weight ``s_l``, and the later samples,
    a uniform sample of the ``D_l - q`` directions the probes left whatever
    the probes decided, at weight ``s_l (D_l - q) / (k_l - q)``. So the
    estimate is unbiased for ``s_0 P_0 g + s_1 P_1 g`` given the decision.
    ``s_0 = 1``; ``s_1 = 1`` on full rows (unbiased for the gradient) and, on
    coarse rows, the share of the contrasts the later samples reached,
    ``(k_1 - q) / (D_1 - q)`` (0 when they reached none; ``contrast_scale``).
    All samples of a complete basis (``n = d``) give the exact gradient.

    Args:

        layout (InputLayout): The inputs' shapes.
        space (Space): The flat inputs.
        n_samples (int): Samples per row (at most ``d``).
        channels (int): ``C``.
        noise (CounterNoise): The call's random numbers.
        streams (Tensor): The distinct noise streams of the call.
        stream_index (Tensor): ``(rows,)`` each row's index into ``streams``.
    """

    def __init__(
        self,
        layout: InputLayout,
        space: Space,
        n_samples: int,
        channels: int,
        noise: CounterNoise,
        streams: Tensor,
        stream_index: Tensor,
    ) -> None:
        batch, d, device = space.batch_size, space.dim, space.device
        m = d // channels
        self.n, self.d, self.m, self.channels = n_samples, d, m, channels
        self.dtype = space.dtype
        self.stream_index = stream_index
        self.coarse_order = noise.permutation(streams, m, COARSE_ORDER)
        self.fine_order = noise.permutation(streams, d - m, FINE_ORDER) + m
        self.signs = noise.signs(streams, m, space.dtype)
        self.pixel_ranges = _pixel_ranges(layout)
        q = min(PROBES, n_samples // 16, m, d - m)
        self.q = q if q >= 2 else 0
        self.probe_samples = 2 * self.q
        # until adapt() (and for good without probes): every row coarse
        self.coarse = torch.ones(batch, dtype=torch.bool, device=device)
        self.k0 = torch.full((batch,), min(n_samples - self.q, m), device=device)
        self.energy: Tensor | None = None

    def adapt(self, energy: Tensor) -> None:
        r"""Decides, per row, coarse or full from the probes' ``(2, rows)``
        squared output changes (``q`` per stratum)."""
        self.energy = energy
        self.coarse = energy[0] > energy[1]
        self.k0 = self._allocate(self.n, self.q)

    def _allocate(self, n: int, q: int) -> Tensor:
        r"""``(rows,)`` samples of the shared stratum: all it can take on
        coarse rows; in proportion on full rows, with at least one later
        sample per stratum."""
        m, d = self.m, self.d
        low, high = max(q + 1, n - (d - m)), min(m, n - q - 1)
        proportional = min(max(round(n * m / d), low), high)
        full = torch.full_like(self.k0, proportional)
        return torch.where(self.coarse, torch.full_like(self.k0, min(n - q, m)), full)

    def _sizes(
        self, n: int | None = None, q: int | None = None, k0: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""``(2, rows)`` samples ``k_l``, ``(2, 1)`` sizes ``D_l`` and
        ``(2, rows)`` target scales ``s_l`` (of this call, or at ``n``
        samples with ``q`` probes and ``k0`` shared samples)."""
        n = self.n if n is None else n
        q = self.q if q is None else q
        k0 = (self.k0 if k0 is None else k0).to(self.dtype)
        k = torch.stack([k0, n - k0])
        sizes = torch.tensor([[self.m], [self.d - self.m]], dtype=self.dtype)
        sizes = sizes.to(k.device)
        reached = (k[1] - q) / max(self.d - self.m - q, 1)
        s1 = torch.where(self.coarse, reached, torch.ones_like(reached))
        return k, sizes, torch.stack([torch.ones_like(s1), s1])

    def contrast_scale(self) -> Tensor:
        r"""``(rows,)`` the factor ``s_1`` of the channel contrasts in the
        estimate's expectation: 1 for full rows, below 1 for coarse rows."""
        return self._sizes()[2][1]

    def weights(self) -> tuple[Tensor, Tensor]:
        r"""``(2, rows)`` weights of the probes' and of the later samples' sums
        of ``delta_k u_k`` (directions of norm ``sqrt(d)``)."""
        k, sizes, scale = self._sizes()
        later = (k - self.q).clamp_min(1)
        return scale / self.d, scale * (sizes - self.q) / later / self.d

    def combine(
        self, sums: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        r"""
        The estimate from the running sums.

        Args:

            sums (Tensor): ``(4 rows, d)`` sums of ``delta_k u_k``: the probes
                        of stratum 0 and 1, then the later samples of stratum
                        0 and 1 (level ``l`` of row ``r`` at ``l rows + r``).
            squares (Tensor, optional): The same sums of their squares, for
                        the variance.

        Returns:
            The ``(rows, d)`` estimate times sigma and, with ``squares``, its
            variance times sigma squared, from the later samples (sampled
            without replacement; 0 for a complete stratum, inf where a
            stratum has a single later sample).
        """
        rows = self.k0.shape[0]
        sums = sums.view(4, rows, -1)
        probe_w, later_w = (w.unsqueeze(2) for w in self.weights())
        estimate = (sums[:2] * probe_w + sums[2:] * later_w).sum(0)
        if squares is None:
            return estimate, None
        k, sizes, _ = self._sizes()
        later = (k - self.q).unsqueeze(2)
        population = (sizes - self.q).unsqueeze(2)
        later_sums, later_squares = sums[2:], squares.view(4, rows, -1)[2:]
        spread = (later_squares - later_sums.square() / later.clamp_min(1)).clamp_min(0)
        spread = spread / (later - 1).clamp_min(1)
        var_sum = later * spread * (1 - later / population.clamp_min(1))
        single = (later == 1) & (population > 1)
        var_sum = torch.where(single, torch.inf, var_sum)
        var_sum = torch.where(later_w > 0, var_sum, 0.0)
        return estimate, (var_sum * later_w.square()).sum(0)

    def expected_cosine(self, n: int | None = None) -> Tensor:
        r"""
        Per row, the expected cosine of the estimate with the gradient of a
        linear function, from each stratum's share of the gradient's energy
        as the probes measured it (in proportion to the strata's sizes
        without probes): ``(a_0 + s_1 a_1) / sqrt(|g|^2 E|estimate|^2)``.

        Args:

            n (int, optional): Samples per row to evaluate it at, with the
                        rows' decisions as made (the call's by default).
                        Default: None
        """
        if n is None:
            k, sizes, scale = self._sizes()
            q = self.q
        else:
            q = min(PROBES, n // 16, self.m, self.d - self.m)
            q = q if q >= 2 else 0
            k, sizes, scale = self._sizes(n, q, self._allocate(n, q))
        # a_l: each stratum's squared gradient norm (up to a common factor)
        if self.energy is not None and self.q > 0:
            share = self.energy.to(self.dtype) * sizes
        else:
            share = sizes.expand_as(k)
        later_w = scale * (sizes - q) / (k - q).clamp_min(1)
        spent = (scale.square() * q + later_w.square() * (k - q)) * share / sizes
        aligned = (scale * share).sum(0)
        total = share.sum(0).clamp_min(1e-30)
        return (aligned / (total * spent.sum(0).clamp_min(1e-30)).sqrt()).clamp(0, 1)

    def _basis_index(
        self, samples: Tensor, rows: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""Each pair's level (0/1: probes of stratum 0/1; 2/3: later samples),
        the index of its basis direction and its row's stream table index."""
        q = self.q
        t = samples - 2 * q
        k0 = self.k0.index_select(0, rows)
        probing = t < 0
        stratum = torch.where(probing, samples % 2, (t >= k0 - q).long())
        position = torch.where(
            probing,
            samples // 2,
            torch.where(stratum == 0, q + t, q + t - (k0 - q)),
        )
        table = self.stream_index.index_select(0, rows)
        coarse = self.coarse_order[table, position.clamp(max=self.m - 1)]
        fine = self.fine_order[table, position.clamp(max=self.d - self.m - 1)]
        level = stratum + 2 * (~probing).long()
        return level, torch.where(stratum == 0, coarse, fine), table

    def directions(self, samples: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        r"""Each pair's level and its ``(pairs, d)`` direction of norm
        ``sqrt(d)``."""
        m, c = self.m, self.channels
        level, picked, table = self._basis_index(samples, rows)
        pixel_basis = dct_rows(picked % m, m, self.dtype) * self.signs[table]
        channel_level = torch.where(picked < m, 0, 1 + (picked - m) // m)
        channel_basis = dct_rows(channel_level, c, self.dtype)
        parts = []
        for start, stop in self.pixel_ranges:
            block = channel_basis.unsqueeze(2) * pixel_basis[:, start:stop].unsqueeze(1)
            parts.append(block.reshape(picked.shape[0], -1))
        return level, torch.cat(parts, dim=1) * math.sqrt(self.d)


def dct_rows(index: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    r"""Rows ``index`` of the orthonormal DCT-II basis of length ``size``."""
    device = index.device
    two_p_plus_1 = 2 * torch.arange(size, device=device) + 1
    # integer phase modulo a period keeps float precision for large sizes
    phase = (index.unsqueeze(1) * two_p_plus_1.unsqueeze(0)) % (4 * size)
    basis = torch.cos(phase.to(dtype) * (math.pi / (2 * size)))
    scale = torch.full(index.shape, math.sqrt(2.0 / size), dtype=dtype, device=device)
    scale.masked_fill_(index == 0, math.sqrt(1.0 / size))
    return basis * scale.unsqueeze(1)


def _pixel_ranges(layout: InputLayout) -> tuple[tuple[int, int], ...]:
    r"""Each input tensor's range in the concatenated pixel index."""
    ranges, start = [], 0
    for shape in layout.shapes:
        stop = start + shape[-2] * shape[-1]
        ranges.append((start, stop))
        start = stop
    return tuple(ranges)
