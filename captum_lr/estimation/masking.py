r"""The likelihood-ratio gradient over feature masks: each group's Banzhaf value.

For an input ``x``, a baseline ``b`` and ``k`` feature groups, let
``F(p) = E f(b + m * (x - b))`` where every group is kept (``m_G = 1``) with
probability ``p_G`` and replaced by the baseline otherwise. The likelihood
ratio (score function) of that Bernoulli noise gives its gradient from forward
queries only::

    dF/dp_G = E[ f(b + m * (x - b)) * (m_G - p_G) / (p_G (1 - p_G)) ]

At ``p = 1/2`` this is the **Banzhaf value** of group ``G``: the change in
``f`` from keeping ``G``, averaged over all subsets of the other groups. With
signs ``s = 2m - 1`` it reads ``B_G = E[f(s) s_G] * 2``; :func:`mask_gradient`
evaluates every sign vector and its negation (a foldover pair, two rows) and
averages ``(f(s) - f(-s)) * s_G``, which cancels every even-order interaction
between groups exactly, and draws the signs from :class:`SignDesign`
(orthogonal within blocks). The perturbations are large (whole groups switch
between the input and the baseline), so this is the region map of a model's
behaviour off its input, not a local gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_lr.estimation.mask_design import SignDesign
from captum_lr.estimation.queries import QueryRunner


class ConstantMaskOutputWarning(UserWarning):
    r"""Every mask and its complement gave the same output: the map is 0."""


@dataclass
class MaskEstimate:
    r"""What :func:`mask_gradient` returns, per input row and feature group.

    Args:

        values (Tensor): ``(rows, k)`` the estimated Banzhaf values.
        stderr (Tensor): ``(rows, k)`` their standard errors (see
                    :func:`_stderr`; inf with one pair).
    """

    values: Tensor
    stderr: Tensor


def mask_gradient(
    runner: QueryRunner,
    inputs: Tensor,
    baselines: Tensor,
    group_index: Tensor,
    n_pairs: int,
    design: SignDesign,
    pairs_per_call: int,
    show_progress: bool = False,
) -> MaskEstimate:
    r"""
    Estimates each feature group's Banzhaf value from ``2 * n_pairs`` masked
    queries per row.

    Args:

        runner (QueryRunner): Sends flat rows to the forward function.
        inputs (Tensor): ``(rows, d)`` flat inputs ``x``.
        baselines (Tensor): ``(rows, d)`` flat baselines ``b``.
        group_index (Tensor): ``(d,)`` the group (``0 .. k - 1``) of each
                    coordinate.
        n_pairs (int): Foldover pairs per row.
        design (SignDesign): The signs of the ``k`` groups.
        pairs_per_call (int): Pairs per row built at once (memory: ``2 *
                    pairs_per_call * rows * d`` values).
        show_progress (bool, optional): A tqdm bar over the rows.
                    Default: False

    Returns:
        *MaskEstimate*: values and standard errors, ``(rows, k)``.
    """
    batch, dim = inputs.shape
    k = design.groups
    dtype = inputs.dtype
    diff = inputs - baselines
    total = torch.zeros((batch, k), device=inputs.device, dtype=torch.float64)
    squares = torch.zeros(batch, device=inputs.device, dtype=torch.float64)
    moved = torch.zeros((), dtype=torch.long, device=inputs.device)
    owners = torch.arange(batch)
    bar = tqdm(
        total=2 * n_pairs * batch,
        disable=not show_progress,
        desc="LR mask queries",
        unit="row",
    )
    for start in range(0, n_pairs, pairs_per_call):
        stop = min(start + pairs_per_call, n_pairs)
        signs = design.signs(start, stop, dtype)  # (m, k)
        keep = (signs.index_select(1, group_index) + 1) * 0.5  # (m, d)
        masks = torch.cat([keep, 1 - keep])  # s and -s
        rows = baselines.unsqueeze(0) + masks.unsqueeze(1) * diff.unsqueeze(0)
        two_m = masks.shape[0]
        scores = runner(rows.reshape(two_m * batch, dim), owners.repeat(two_m))
        scores = scores.view(two_m, batch).to(torch.float64)
        m = two_m // 2
        delta = scores[:m] - scores[m:]  # (m, rows): f(s) - f(-s)
        moved += (delta != 0).sum()
        total += delta.T @ signs.to(torch.float64)
        squares += delta.square().sum(0)
        bar.update(two_m * batch)
    bar.close()
    runner.check_finite(
        "check the model on masked inputs (parts of the inputs replaced by the "
        "baselines)"
    )
    if n_pairs > 0 and int(moved.item()) == 0:
        warnings.warn(
            "every mask and its complement gave the same output, so every "
            "attribution is 0: switching the feature groups between the inputs "
            "and the baselines does not move the selected output in a way the "
            "groups explain one by one (check the baselines, the target and the "
            "feature mask).",
            ConstantMaskOutputWarning,
            stacklevel=4,  # mask_gradient < attribute < log_usage < caller
        )
    values = total / n_pairs
    stderr = _stderr(values, squares, n_pairs, design.order)
    return MaskEstimate(values.to(dtype), stderr.to(dtype))


def _stderr(values: Tensor, squares: Tensor, n_pairs: int, order: int) -> Tensor:
    """Standard errors from the pairs' output changes ``delta``.

    With more pairs ``n`` than groups ``k``, the residual of the additive fit
    ``delta_k ~ s_k . values`` (what the orthogonal blocks do not cancel:
    odd-order interactions, noise) has ``n - k`` degrees of freedom and adds
    ``RSS / (n - k) / n`` to each value's variance, as for least squares on an
    orthogonal design (``RSS = sum delta^2 - n |values|^2``); the incomplete
    last block (``r`` of its ``N`` rows, drawn without replacement) adds the
    other groups' aliased additive effects, ``r (N - r) / ((N - 1) n^2)`` times
    their squared sum. With at most ``k`` pairs the fit cannot be separated
    from the residual and the spread of ``delta_k s_kG`` is used as for
    independent pairs: exact for ``n << N``, conservative by up to
    ``sqrt((N - 1) / (N - n))`` otherwise.
    """
    batch, k = values.shape
    if k == 1:  # every pair gives f(x) - f(baseline): exact
        return torch.zeros_like(values)
    if n_pairs > k:
        rss = (squares - n_pairs * values.square().sum(1)).clamp_min(0)
        var = (rss / ((n_pairs - k) * n_pairs)).view(-1, 1).expand(batch, k)
        # the last, incomplete block: r of its N rows, drawn without
        # replacement, leave the other groups' additive effects aliased
        r = n_pairs % order
        alias = r * (order - r) / ((order - 1) * n_pairs**2)
        others = values.square().sum(1, keepdim=True) - values.square()
        var = var + alias * others
    elif n_pairs > 1:
        spread = (squares.view(-1, 1) / n_pairs - values.square()).clamp_min(0)
        var = spread / (n_pairs - 1)
    else:
        var = torch.full_like(values, torch.inf)
    return var.sqrt()
