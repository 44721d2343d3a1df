r"""A surrogate prior whose complement is sampled with the strata of the
prior-free default for images: the channel strata
(:class:`ChannelSurrogatePlan`) or, on photos at frequency budgets, the
frequency strata (:class:`FrequencySurrogatePlan`); :func:`make_surrogate_plan`
picks the plan of a call (see :mod:`~captum_lr.estimation.surrogate` for the
estimator)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_lr.estimation.designs import Draw, auto_frequency, image_channels
from captum_lr.estimation.frequency import FrequencyStrata
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.strata import ChannelStrata
from captum_lr.estimation.streams import CounterNoise
from captum_lr.estimation.surrogate import SurrogatePlan, reflection


class ChannelSurrogatePlan(SurrogatePlan):
    r"""
    A surrogate prior on ``(C, H, W)`` images below ``n = d``: after the
    prior's query, the channel strata
    (:class:`~captum_lr.estimation.strata.ChannelStrata`, the prior-free
    default for images) estimate ``T`` (their target: the gradient, or its
    channel-shared part on rows that concentrate), and the estimate is ``a p +
    lambda (I - p p') T``, the measured component along the prior plus the
    strata's estimate of the rest, weighted by ``lambda = B / C``: ``C = |(I - p
    p') T|^2`` and ``B = sum_l W_l sum_{i in l} delta_i y_i``, its inner
    product with the gradient's part orthogonal to the prior, which the
    queries give exactly for a linear function (``y_i = delta_i - a p.u_i``;
    ``W_l`` the strata's weights). That ``lambda`` gives the best cosine for
    every draw (for the flat design it is the projection); ``unbiased=True``
    takes ``lambda = 1``, unbiased for the strata's target. Standard errors
    are the strata's times ``lambda``.
    """

    levels = 5

    def __init__(
        self,
        layout: InputLayout,
        channels: int,
        scaled_prior: Tensor,
        n_samples: int,
        noise: CounterNoise,
        streams: Tensor,
        unbiased: bool,
    ) -> None:
        unique = self._start(layout, scaled_prior, n_samples, streams, unbiased)
        self.complement = ChannelStrata(
            layout, self.space, self.m, channels, noise, unique, self.stream_index
        )
        probes = self.complement.probe_samples
        self.probe_samples = 1 + probes if self.complement.q else 0

    def _start(
        self,
        layout: InputLayout,
        scaled_prior: Tensor,
        n_samples: int,
        streams: Tensor,
        unbiased: bool,
    ) -> Tensor:
        """What every strata complement sets up (the prior's unit direction,
        the sample counts); returns the call's distinct streams."""
        space = layout.space
        self.space, self.dim, self.n_samples = space, space.dim, n_samples
        self.unbiased, self.m = unbiased, n_samples - 1
        unique, self.stream_index = torch.unique(streams, return_inverse=True)
        e = torch.full_like(scaled_prior, 1.0 / math.sqrt(space.dim))
        self.direction, _ = reflection(scaled_prior, e)
        self.prior_cosine = None
        self._figure: Tensor | None = None
        return unique

    def draw(self, samples: Tensor, rows: Tensor) -> Draw:
        r"""Sample 0: the prior; then the strata's directions."""
        d = self.dim
        p = self.direction.index_select(0, rows)
        level, u = self.complement.directions((samples - 1).clamp_min(0), rows)
        first = samples == 0
        u = torch.where(first.unsqueeze(1), p * math.sqrt(d), u)
        return Draw(u, None, torch.where(first, 0, level + 1))

    def adapt(self, energy: Tensor, probe_sums: Tensor) -> None:
        r"""Hands the strata's probes their energies."""
        self.complement.adapt(energy[1:3])

    def combine(
        self, numerator: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        r"""The estimate (times sigma), its variance and the samples per
        coordinate."""
        levels, d = self.levels, self.dim
        rows = numerator.shape[0] // levels
        sums, p = numerator.view(levels, rows, d), self.direction
        a = (sums[0] / d * p).sum(1)
        rest = None if squares is None else squares[rows:]
        strata = sums[1:].reshape((levels - 1) * rows, d)
        target, var = self.complement.combine(strata, rest)
        perp = target - (target * p).sum(1, keepdim=True) * p
        inner = self._inner(sums[1:], a)  # B
        size = perp.square().sum(1)  # C
        lam = torch.ones_like(a)
        if not self.unbiased:
            lam = torch.where(size > 0, inner / size.clamp_min(1e-300), 0.0)
        grads = a.unsqueeze(1) * p + lam.unsqueeze(1) * perp
        self._report(a, inner, size, lam)
        if var is not None:
            var = var * lam.square().unsqueeze(1)
        return grads, var, torch.full_like(grads, self.n_samples)

    def _inner(self, sums: Tensor, a: Tensor) -> Tensor:
        r"""``(rows,)`` ``B = sum_i w_i delta_i y_i`` from the strata's
        ``(levels, rows, d)`` running sums: per level, ``sum_i delta_i y_i =
        |N_l|^2 / d - a N_l . p``, at the level's weight."""
        probe_w, later_w = self.complement.weights()
        weights = torch.cat([probe_w, later_w])  # (4, rows)
        p, d = self.direction, self.dim
        products = sums.square().sum(2) / d - a * (sums * p).sum(2)
        return (weights * products).sum(0)

    def _report(self, a: Tensor, inner: Tensor, size: Tensor, lam: Tensor) -> None:
        """The estimated alignment and the cosine of the estimate, from ``a``,
        ``B`` (about ``|G_perp|^2``) and ``C``."""
        total = a.square() + inner.clamp_min(0)
        self.prior_cosine = (a.abs() / total.clamp_min(1e-300).sqrt()).where(
            total > 0, torch.ones_like(a)
        )
        fitted = a.square() + lam.square() * size
        figure = (a.square() + lam * inner) / (total * fitted).clamp_min(1e-300).sqrt()
        self._figure = figure.clamp(0, 1)

    def expected_cosine(self) -> Tensor | None:
        r"""Per row, the cosine of the estimate with a linear function's
        gradient from the measured ``a``, ``B`` and ``C`` (``B`` stands for
        ``|G_perp|^2``; the strata's target on concentrating rows)."""
        return self._figure

    def project(self, scaled: Tensor) -> Tensor:
        r"""Not a fixed linear map of the gradient (the weight is data-driven)."""
        raise ValueError(
            "what a Surrogate with the channel-strata complement (images, "
            "n_samples < d) estimates depends on its data-driven weight and on "
            "each row's strata; compare with the gradient itself."
        )


class FrequencySurrogatePlan(ChannelSurrogatePlan):
    r"""
    A surrogate prior on photos where the prior-free default samples the
    frequency strata (:func:`~captum_lr.estimation.designs.auto_frequency`
    with the ``n - 1`` samples after the prior's query): after the prior's
    query, the frequency strata
    (:class:`~captum_lr.estimation.frequency.FrequencyStrata`) estimate
    ``T`` and the estimate is ``a p + lambda (I - p p') T``, as for the
    channel strata (:class:`ChannelSurrogatePlan`), with ``B = sum_i w_i
    delta_i y_i`` over the samples at their weights ``w_i`` in ``T`` (a
    probe's by its stratum). The alignment and the expected cosine use the
    gradient's squared norm the probes imply
    (:meth:`~captum_lr.estimation.frequency.FrequencyStrata.energy`; at least
    ``a^2 + B``), since ``B`` covers only the strata the samples reached.
    """

    levels = 4

    def __init__(
        self,
        layout: InputLayout,
        scaled_prior: Tensor,
        n_samples: int,
        noise: CounterNoise,
        streams: Tensor,
        unbiased: bool,
    ) -> None:
        unique = self._start(layout, scaled_prior, n_samples, streams, unbiased)
        self.complement = FrequencyStrata(
            layout, self.space, self.m, noise, unique, self.stream_index
        )
        self.probe_samples = 1 + self.complement.probe_samples

    def adapt(self, energy: Tensor, probe_sums: Tensor) -> None:
        r"""Hands the strata the ``(rows, d)`` running sum of their probes."""
        self.complement.adapt(probe_sums)

    def _inner(self, sums: Tensor, a: Tensor) -> Tensor:
        r"""``(rows,)`` ``B``: the probes by basis coefficient (``c_j =
        sqrt(d) delta_i``, at their stratum's weight), the later samples per
        level (at one weight)."""
        strata, p, d = self.complement, self.direction, self.dim
        probe_w, later_w = strata.sample_weights()
        c, pc = strata.transform(sums[0]), strata.transform(p)
        probes = (probe_w * (c.square() / d - a.unsqueeze(1) * c * pc)).sum(1)
        later = sums[1:].square().sum(2) / d - a * (sums[1:] * p).sum(2)
        return probes + later_w.squeeze(1) * later.sum(0)

    def _report(self, a: Tensor, inner: Tensor, size: Tensor, lam: Tensor) -> None:
        """The alignment and the cosine of the estimate, with ``|G|^2`` the
        larger of the probes' figure and ``a^2 + B``."""
        total = torch.maximum(self.complement.energy(), a.square() + inner.clamp_min(0))
        self.prior_cosine = (a.abs() / total.clamp_min(1e-300).sqrt()).where(
            total > 0, torch.ones_like(a)
        )
        fitted = a.square() + lam.square() * size
        figure = (a.square() + lam * inner) / (total * fitted).clamp_min(1e-300).sqrt()
        self._figure = figure.clamp(0, 1)

    def project(self, scaled: Tensor) -> Tensor:
        r"""Not a fixed linear map of the gradient (the weight is data-driven)."""
        raise ValueError(
            "what a Surrogate with the frequency-strata complement (photos at "
            "960 samples or more per row) estimates depends on its data-driven "
            "weight and on each row's strata; compare with the gradient itself."
        )


def make_surrogate_plan(
    layout: InputLayout,
    scaled_prior: Tensor,
    n_samples: int,
    noise: CounterNoise,
    streams: Tensor,
    unbiased: bool,
) -> SurrogatePlan:
    r"""The plan of a call with a surrogate prior: for the complement of
    ``(C, H, W)`` images below ``n = d`` the strata of the prior-free default
    (the frequency strata where ``design="auto"`` picks them for the ``n -
    1`` samples after the prior's, the channel strata otherwise), the
    reflected orthonormal basis otherwise (exact at ``n = d``)."""
    channels = image_channels(layout)
    if channels is not None and n_samples < layout.dim:
        if auto_frequency(layout, n_samples - 1):
            return FrequencySurrogatePlan(
                layout, scaled_prior, n_samples, noise, streams, unbiased
            )
        return ChannelSurrogatePlan(
            layout, channels, scaled_prior, n_samples, noise, streams, unbiased
        )
    return SurrogatePlan(
        layout.space, scaled_prior, n_samples, noise, streams, unbiased
    )
