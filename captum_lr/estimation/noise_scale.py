r"""``sigma="auto"``: where the model's curvature shows, a smaller noise scale.

One-sided differences ``f(x + sigma u) - f(x)`` carry the second-order term
``sigma^2 u'Hu / 2`` as well as the first-order ``sigma g.u``. On most photos
and models it is negligible at ``1e-4`` times the input's RMS; on some the
model is strongly curved at that scale and the one-sided estimate loses most
of its accuracy (one product photo: cosine 0.08 at 1e-4, 0.15 at 1e-5).

:class:`SigmaProbe` measures it per row from the first few samples of a
call, sent as antithetic pairs (used as central-difference samples, so no row
is wasted): the second difference ``D2 = (f(x+sigma u) + f(x-sigma u)) / 2 -
f(x)`` against the first ``D1 = (f(x+sigma u) - f(x-sigma u)) / 2``. Where
``rms(D2) / rms(D1)`` exceeds :data:`CURVED`, the row's later samples use
``sigma`` times ``TARGET / ratio`` (``D2 / D1`` scales like sigma); where
``D1`` is within :data:`RESOLUTION` float steps of the output, a larger
scale; where both hold, the geometric mean of the two (:meth:`SigmaProbe.
decide`).
"""

from __future__ import annotations

import torch
from torch import Tensor

PROBE_PAIRS = 4
r"""Samples per row sent as antithetic pairs to measure curvature (one extra
forward row each)."""

CURVED = 0.1
r"""``rms(D2) / rms(D1)`` above which a row's noise scale shrinks."""

TARGET = 0.02
r"""The ratio a shrunk noise scale aims at."""

RESOLUTION = 100.0
r"""The first-order change should be at least this many float steps of the
output."""

MAX_GROWTH = 100.0
r"""The most a row's noise scale grows where its output barely moves."""


def probe_pairs(n_samples: int) -> int:
    r"""Probe pairs of a one-sided random design with ``n_samples`` samples (0
    below 16 samples, where they would be a large share of the budget)."""
    return PROBE_PAIRS if n_samples >= 16 else 0


class SigmaProbe:
    r"""
    Per row, the sums of ``D1^2`` and ``D2^2`` over the probe pairs, and the
    noise-scale multiplier they decide.

    Args:

        rows (int): Input rows.
        device (torch.device): Where the rows live.
        dtype (torch.dtype): The estimate's dtype.
    """

    def __init__(self, rows: int, device: torch.device, dtype: torch.dtype) -> None:
        self.first = torch.zeros(rows, device=device, dtype=dtype)
        self.second = torch.zeros(rows, device=device, dtype=dtype)
        self.pairs = torch.zeros(rows, device=device, dtype=dtype)
        self.multiplier = torch.ones(rows, device=device, dtype=dtype)

    def add(self, rows: Tensor, plus: Tensor, minus: Tensor, f0: Tensor) -> Tensor:
        r"""Adds a chunk of probe pairs; returns their central differences."""
        first = (plus - minus) * 0.5
        second = (plus + minus) * 0.5 - f0
        self.first.index_add_(0, rows, first.square())
        self.second.index_add_(0, rows, second.square())
        self.pairs.index_add_(0, rows, torch.ones_like(first))
        return first

    def decide(self, f0: Tensor, eps: float) -> Tensor:
        r"""
        Sets and returns the ``(rows,)`` multiplier of the later samples'
        noise scale: 1 where it is neither curved nor near the output's
        rounding; the nearest of the two bounds otherwise (shrink to
        ``TARGET`` where curved, grow to ``RESOLUTION`` float steps where the
        change is too small); where they conflict, their geometric mean,
        which balances the two errors. Never more than :data:`MAX_GROWTH`.

        Args:

            f0 (Tensor): ``(rows,)`` the unperturbed outputs.
            eps (float): The output dtype's machine epsilon.
        """
        ratio = (self.second / self.first.clamp_min(1e-300)).sqrt()
        first_rms = (self.first / self.pairs.clamp_min(1)).sqrt()
        low = RESOLUTION * eps * f0.abs() / first_rms.clamp_min(1e-300)
        high = torch.where(ratio > CURVED, TARGET / ratio.clamp_min(1e-300), 1.0)
        within = torch.minimum(torch.maximum(torch.ones_like(low), low), high)
        multiplier = torch.where(low <= high, within, (low * high).sqrt())
        multiplier = multiplier.clamp(max=MAX_GROWTH)
        # no first-order change at all: below the output's resolution when
        # the second difference is 0 too (grow), else an even function here
        still = torch.where(self.second > 0, 1.0, MAX_GROWTH)
        self.multiplier = torch.where(self.first > 0, multiplier, still)
        return self.multiplier
