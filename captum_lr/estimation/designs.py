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
- ``"orthogonal-frequency"``: for a single input of ``(C, H, W)`` image
  rows, the DCT basis (over channels, then 2D over pixels, no sign flips) in
  strata by channel (shared or contrast) and ring of spatial frequency; each
  row probes every stratum, then fills the strata where the output changes
  most per direction, one after the other (unbiased, given the decision, for
  the gradient's projection on the strata it reached). See
  :class:`~captum_lr.estimation.frequency.FrequencyStrata`.
- ``"coordinate"``: one coordinate per sample (finite differences), every
  coordinate of a row in a random order. Exact for linear functions once each
  coordinate has been visited.
- ``"auto"``: ``"coordinate"`` with exactly ``d`` samples (one sweep) when the
  row has at most ``n_samples`` coordinates; else, for whole inputs,
  ``"orthogonal-frequency"`` for a single input tensor of ``(C, H, W)`` rows
  with ``C >= 2``, at least 48 pixels a side (all :data:`RINGS` rings) and
  enough samples for :data:`AUTO_FREQUENCY_PROBES` probes per stratum (960
  samples per row), ``"orthogonal-channels"`` for other inputs whose tensors
  all have ``(C, H, W)`` rows with the same ``C >= 2``, and ``"orthogonal"``
  otherwise (:func:`auto_frequency`); ``"gaussian"`` inside blocks.

Supports (where a sample's noise goes: whole input, blocks, feature groups)
are in :mod:`captum_lr.estimation.supports`; the channel strata in
:mod:`captum_lr.estimation.strata`.

Randomness: every direction is a function of the call's key, the row's noise
*stream* and the sample index (:mod:`captum_lr.estimation.streams`), never of
the input values, of the other rows or of how the pairs are chunked. Rows
with the same stream get the same directions (and sign flips, and basis
order); the estimator gives every row of a plain call stream 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from captum_lr.estimation.frequency import (
    RINGS,
    FrequencyStrata,
    probes_per_stratum,
    rings_for,
    stratum_ids,
)
from captum_lr.estimation.layout import InputLayout, Space
from captum_lr.estimation.strata import ChannelStrata, dct_rows
from captum_lr.estimation.streams import CounterNoise
from captum_lr.estimation.supports import Support

DESIGNS = (
    "auto",
    "gaussian",
    "orthogonal",
    "orthogonal-channels",
    "orthogonal-frequency",
    "coordinate",
)
STRATIFIED_DESIGNS = ("orthogonal-channels", "orthogonal-frequency")
WHOLE_INPUT_DESIGNS = ("orthogonal", "coordinate") + STRATIFIED_DESIGNS


def image_channels(layout: InputLayout) -> int | None:
    r"""The channel count ``C`` when every input tensor has ``(C, H, W)`` rows
    with the same ``C >= 2``; None otherwise."""
    channels = {shape[0] if len(shape) == 3 else 0 for shape in layout.shapes}
    if len(channels) == 1:
        (c,) = channels
        if c >= 2:
            return int(c)
    return None


AUTO_FREQUENCY_PROBES = 4
r"""The fewest probes per stratum with which ``design="auto"`` picks
``"orthogonal-frequency"`` (960 samples per row at 24 strata): with fewer, its
ranking of the strata is too noisy to beat the channel strata reliably."""


def auto_frequency(layout: InputLayout | None, n_samples: int) -> bool:
    r"""
    Whether ``design="auto"`` picks ``"orthogonal-frequency"`` for whole inputs
    of this layout at ``n_samples`` per row: a single input tensor of
    ``(C, H, W)`` rows with ``C >= 2`` (photos), all :data:`RINGS` rings of
    spatial frequency (:func:`~captum_lr.estimation.frequency.rings_for`: at
    least 48 pixels a side) and at least :data:`AUTO_FREQUENCY_PROBES` probes
    per stratum. Otherwise ``"auto"`` keeps ``"orthogonal-channels"`` (or
    ``"orthogonal"``).

    Args:

        layout (InputLayout, optional): The inputs' shapes (None: a prior's
                    subspace, never).
        n_samples (int): Requested noise samples per row.
    """
    if layout is None or len(layout.shapes) != 1 or image_channels(layout) is None:
        return False
    c, h, w = (int(k) for k in layout.shapes[0])
    if rings_for(h, w) != RINGS:
        return False
    sizes = torch.bincount(stratum_ids((c, h, w), RINGS, torch.device("cpu")))
    n = min(n_samples, layout.dim)
    return probes_per_stratum(n, sizes) >= AUTO_FREQUENCY_PROBES


def resolve_design(
    design: str,
    whole_input: bool,
    dim: int,
    n_samples: int,
    channels: int | None,
    layout: InputLayout | None = None,
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
        layout (InputLayout, optional): The inputs' shapes when directions
                    live in the flat inputs (None for a prior's subspace): with
                    it, ``"auto"`` may pick ``"orthogonal-frequency"``
                    (:func:`auto_frequency`).
                    Default: None

    Returns:
        *tuple[str, int]*: the concrete design and its samples per row.
    """
    if design == "auto":
        if dim <= n_samples:
            return "coordinate", dim
        if not whole_input:
            return "gaussian", n_samples
        if auto_frequency(layout, n_samples):
            return "orthogonal-frequency", min(n_samples, dim)
        return ("orthogonal-channels" if channels else "orthogonal"), n_samples
    if design == "orthogonal-channels" and channels is None:
        raise ValueError(
            "design='orthogonal-channels' needs every input tensor to have "
            "(C, H, W) rows with the same C >= 2 and no prior; use "
            "design='orthogonal' for other inputs."
        )
    if design == "orthogonal" or design in STRATIFIED_DESIGNS:
        # a complete orthonormal basis is exact: more samples add nothing
        return design, min(n_samples, dim)
    return design, n_samples


class Draw(NamedTuple):
    r"""The directions of a chunk of (row, sample) pairs.

    Args:

        u (Tensor): ``(m, d)`` noise directions.
        weight (Tensor, optional): ``(m, d)`` what each pair adds to a
                    coordinate's normaliser (None: 1 for every coordinate).
        level (Tensor, optional): ``(m,)`` the running sum each pair adds to
                    (None for single-sum designs).
    """

    u: Tensor
    weight: Tensor | None
    level: Tensor | None


class SamplingPlan:
    r"""The directions of one estimator call: a design, a support and a budget.

    Args:

        design (str): One of :data:`DESIGNS`.
        support (Support): Where each sample's noise goes.
        space (Space): The coordinates directions live in (the flat inputs, or
                    a prior's subspace).
        n_samples (int): Noise samples per input row.
        noise (CounterNoise): The call's random numbers.
        streams (Tensor): ``(rows,)`` the noise stream of each row, on the
                    inputs' device; rows with equal streams get equal
                    directions.
        layout (InputLayout, optional): The inputs' shapes when ``space`` is
                    the flat inputs (None for a prior's subspace): needed by
                    the stratified designs (and by ``"auto"`` to pick
                    ``"orthogonal-frequency"``).
                    Default: None
    """

    def __init__(
        self,
        design: str,
        support: Support,
        space: Space,
        n_samples: int,
        noise: CounterNoise,
        streams: Tensor,
        layout: InputLayout | None = None,
    ) -> None:
        d = space.dim
        self.space, self.support, self.noise = space, support, noise
        self.streams = streams
        channels = image_channels(layout) if layout is not None else None
        design, n_samples = resolve_design(
            design, type(support) is Support, d, n_samples, channels, layout
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
        # one table per distinct stream; rows index it through stream_index
        unique, self.stream_index = torch.unique(streams, return_inverse=True)
        self.levels = 1
        r"""Running sums of the design (``len`` of its levels)."""
        self.probe_samples = 0
        r"""Samples per row after which :meth:`adapt` must be called (0: never)."""
        self.probe_level = 0
        r"""The running sum that holds the probes (:meth:`adapt`'s ``probe_sums``)."""
        self.strata: ChannelStrata | FrequencyStrata | None = None
        if design == "orthogonal-channels":
            self.strata = ChannelStrata(
                layout,  # type: ignore[arg-type]
                space,
                n_samples,
                channels,  # type: ignore[arg-type]
                noise,
                unique,
                self.stream_index,
            )
            self.levels, self.probe_samples = 4, self.strata.probe_samples
        if design == "orthogonal-frequency":
            if layout is None:
                raise ValueError(
                    "design='orthogonal-frequency' cannot be combined with a prior."
                )
            self.strata = FrequencyStrata(
                layout, space, n_samples, noise, unique, self.stream_index
            )
            self.levels, self.probe_samples = 3, self.strata.probe_samples
        if design in ("orthogonal", "coordinate"):
            if design == "coordinate" and n_samples >= d:
                sweep = torch.arange(d, device=space.device)
                self.order = sweep.expand(unique.numel(), d)
            else:
                self.order = noise.permutation(unique, d)[:, : min(n_samples, d)]
        if design == "orthogonal":
            self.signs = noise.signs(unique, d, space.dtype)

    @property
    def finite_population(self) -> float:
        r"""The variance factor of sampling without replacement (1 if with)."""
        n, d = self.n_samples, self.space.dim
        if self.design == "orthogonal" and n <= d:
            return 1.0 - n / d
        return 1.0

    def adapt(self, energy: Tensor, probe_sums: Tensor) -> None:
        r"""Lets the design use its first :attr:`probe_samples` samples per row.

        Args:

            energy (Tensor): ``(levels, rows)`` sums of the squared output
                        changes of those samples, per running sum.
            probe_sums (Tensor): ``(rows, d)`` the first running sum (the
                        probes' ``delta_k u_k``).
        """
        if isinstance(self.strata, FrequencyStrata):
            self.strata.adapt(probe_sums)
            return
        assert self.strata is not None
        self.strata.adapt(energy[:2])

    def expected_cosine(self) -> Tensor | None:
        r"""Per row, the design's expected cosine between its estimate and the
        gradient of a linear function (in a prior's subspace: the projected
        gradient); None where the design has no such figure (blocks, feature
        groups)."""
        rows, n, d = self.space.batch_size, self.n_samples, self.space.dim
        device, dtype = self.space.device, self.space.dtype
        if self.strata is not None:
            return self.strata.expected_cosine()
        if self.design == "coordinate" and n >= d:
            figure = 1.0
        elif self.design in ("orthogonal", "coordinate"):
            figure = math.sqrt(n / d)
        elif type(self.support) is Support:
            figure = math.sqrt(n / (n + d + 1))
        else:
            return None
        return torch.full((rows,), figure, device=device, dtype=dtype)

    def draw(self, samples: Tensor, rows: Tensor) -> Draw:
        r"""Directions, normaliser weights and levels for a chunk of pairs.

        Args:

            samples (Tensor): ``(m,)`` sample index of each pair (on device).
            rows (Tensor): ``(m,)`` input row of each pair (on device).

        Returns:
            A :class:`Draw`.
        """
        m, d = rows.shape[0], self.space.dim
        dtype, device = self.space.dtype, self.space.device
        if self.design == "gaussian":
            streams = self.streams.index_select(0, rows)
            mask = self.support.masks(self.noise, streams, samples)
            u = self.noise.normal(streams, samples, d, dtype)
            return Draw(u if mask is None else u * mask, mask, None)
        if self.strata is not None:
            level, u = self.strata.directions(samples, rows)
            return Draw(u, None, level)
        table = self.stream_index.index_select(0, rows)
        picked = self.order[table, samples % self.order.shape[1]]
        if self.design == "coordinate":
            u = torch.zeros((m, d), device=device, dtype=dtype)
            u.scatter_(1, picked.unsqueeze(1), 1.0)
            return Draw(u, u, None)
        u = dct_rows(picked, d, dtype) * math.sqrt(d)
        return Draw(u * self.signs.index_select(0, table), None, None)
