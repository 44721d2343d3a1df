r"""The estimator's running sums over its queries, and what they add up to."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_lr.estimation.designs import Draw, SamplingPlan


class RunningSums:
    r"""
    Per row and coordinate, the sums of ``delta_k u_k`` (one per level of the
    design), of their squares (for standard errors), of the normaliser weights
    (for designs that perturb part of the input), the squared output changes of
    the probes (for designs that adapt), and the count of queries whose output
    moved. Memory: a few ``(levels * rows, d)`` buffers, whatever ``n_samples``.

    Args:

        plan (SamplingPlan): The call's design.
        squares (bool): Whether to keep the sums of squares.
    """

    def __init__(self, plan: SamplingPlan, squares: bool) -> None:
        space = plan.space
        rows, k, device, dtype = space.batch_size, space.dim, space.device, space.dtype
        self.plan, self.rows = plan, rows
        self.numerator = torch.zeros(
            (plan.levels * rows, k), device=device, dtype=dtype
        )
        self.squares = torch.zeros_like(self.numerator) if squares else None
        self.weights = (
            torch.zeros((rows, k), device=device, dtype=dtype)
            if plan.weighted
            else None
        )
        self.energy = torch.zeros(plan.levels * rows, device=device, dtype=dtype)
        self.moved = torch.zeros((), dtype=torch.long, device=device)
        self.sigma_scale: Tensor | None = None
        r"""Per row, the noise-scale multiplier of the later samples (None:
        the noise scale was not probed)."""

    def add(self, draw: Draw, rows: Tensor, delta: Tensor, probing: bool) -> None:
        r"""Adds a chunk of pairs.

        Args:

            draw (Draw): The pairs' directions, weights and levels.
            rows (Tensor): ``(m,)`` their input rows.
            delta (Tensor): ``(m,)`` their output changes.
            probing (bool): Whether the chunk is among the design's probes.
        """
        self.moved += (delta != 0).sum()
        slot = rows if draw.level is None else rows + draw.level * self.rows
        contribution = draw.u * delta.unsqueeze(1)
        self.numerator.index_add_(0, slot, contribution)
        if probing:
            self.energy.index_add_(0, slot, delta.to(self.energy.dtype).square())
        if self.squares is not None:
            self.squares.index_add_(0, slot, contribution.square())
        if self.weights is not None:
            self.weights.index_add_(0, rows, draw.weight)

    def adapt(self) -> None:
        r"""Hands the design its probes: their energies per running sum and the
        ``(rows, d)`` running sum of the level it names (``probe_level``), in
        which the frequency strata read each probe's output change."""
        energy = self.energy.view(self.plan.levels, self.rows)
        level = self.plan.probe_level
        probes = self.numerator[level * self.rows : (level + 1) * self.rows]
        self.plan.adapt(energy, probes)

    def combine(self) -> tuple[Tensor, Tensor | None, Tensor]:
        r"""
        The estimate, per row and coordinate, times sigma.

        Returns:
            *tuple* of the estimate, its variance (times sigma squared; None
            without ``squares``; inf where fewer than two samples inform a
            coordinate) and the weight of the samples behind each coordinate.
        """
        plan, n = self.plan, self.plan.n_samples
        own = getattr(plan, "combine", None)  # a surrogate prior's plan
        if own is not None:
            return own(self.numerator, self.squares)
        if plan.strata is not None:
            grads, var = plan.strata.combine(self.numerator, self.squares)
            return grads, var, torch.full_like(grads, n)
        weights = self.weights
        counts = weights if weights is not None else torch.full_like(self.numerator, n)
        safe = counts.clamp_min(1e-30)
        mean = torch.where(counts > 0, self.numerator / safe, 0.0)
        if self.squares is None:
            return mean, None, counts
        spread = (self.squares / safe - mean.square()).clamp_min(0)
        var = spread * counts / (counts - 1).clamp_min(1e-30) / safe
        var = var * plan.finite_population
        return mean, torch.where(counts > 1.5, var, torch.inf), counts
