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
(orthogonal within blocks). At another keep probability ``p``,
:func:`mask_regression` estimates ``dF/dp_G`` at ``p``, the **p-binomial
semivalue** (marginal contributions of ``G`` weighted by ``p^|S| (1 -
p)^(k - 1 - |S|)`` over the subsets ``S`` of the other groups), by least
squares with an intercept on independent Bernoulli(p) masks. The
perturbations are large (whole groups switch between the input and the
baseline), so this is the region map of a model's
behaviour off its input, not a local gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_lr.estimation.mask_design import BernoulliDesign, SignDesign
from captum_lr.estimation.queries import QueryRunner


class ConstantMaskOutputWarning(UserWarning):
    r"""Every mask and its complement gave the same output: the map is 0."""


class MaskStderrWarning(UserWarning):
    r"""Some standard errors of :func:`mask_gradient` cannot be estimated from
    the pairs drawn; they are ``inf``."""


@dataclass
class MaskEstimate:
    r"""What :func:`mask_gradient` returns, per input row and feature group.

    Args:

        values (Tensor): ``(rows, k)`` float64, the estimated Banzhaf values.
        stderr (Tensor): ``(rows, k)`` float64, their standard errors (see
                    :func:`mask_stderr`; ``inf`` where they cannot be
                    estimated).
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

    A masked row takes every coordinate from ``inputs`` where its group is kept
    and from ``baselines`` otherwise (a selection, so integer inputs stay
    integers and kept coordinates are bit for bit the input's).

    Args:

        runner (QueryRunner): Sends flat rows to the forward function; a
                    runner with ``columns = c`` returns ``c`` scores per row
                    (``(2 m rows, c)``, e.g. a ``ScaledRunner`` for
                    ``"auto"``) and gets
                    ``(rows, c, k)`` values and standard errors, one
                    estimate per score.
        inputs (Tensor): ``(rows, d)`` flat inputs ``x``, any dtype.
        baselines (Tensor): ``(rows, d)`` flat baselines ``b``, the dtype of
                    ``inputs``.
        group_index (Tensor): ``(d,)`` the group (``0 .. k - 1``) of each
                    coordinate, shared by the rows, or ``(rows, d)``, one
                    grouping per row.
        n_pairs (int): Foldover pairs per row.
        design (SignDesign): The signs of the ``k`` groups.
        pairs_per_call (int): Pairs per row built at once (memory: ``2 *
                    pairs_per_call * rows * d`` values).
        show_progress (bool, optional): A tqdm bar over the rows.
                    Default: False

    Returns:
        *MaskEstimate*: values and standard errors, ``(rows, k)``, float64.
    """
    batch, dim = inputs.shape
    k = design.groups
    device = inputs.device
    cols = getattr(runner, "columns", 1)  # scores per row
    total = torch.zeros((batch, cols, k), device=device, dtype=torch.float64)
    squares = torch.zeros((batch, cols), device=device, dtype=torch.float64)
    moved = torch.zeros(batch, dtype=torch.long, device=device)
    owners = torch.arange(batch, device=device)
    bar = tqdm(
        total=2 * n_pairs * batch,
        disable=not show_progress,
        desc="LR mask queries",
        unit="row",
    )
    for start in range(0, n_pairs, pairs_per_call):
        stop = min(start + pairs_per_call, n_pairs)
        signs = design.signs(start, stop, torch.float64)  # (m, k)
        m = stop - start
        keep = signs[:, group_index] > 0  # (m, d) or (m, rows, d)
        keep = torch.cat([keep, ~keep])  # s and -s
        if keep.dim() == 2:
            keep = keep.unsqueeze(1)
        rows = torch.where(keep, inputs, baselines)  # (2m, rows, d)
        scores = runner(rows.reshape(2 * m * batch, dim), owners.repeat(2 * m))
        scores = scores.view(2 * m, batch, cols).to(torch.float64)
        delta = scores[:m] - scores[m:]  # (m, rows, c): f(s) - f(-s)
        moved += (delta[..., 0] != 0).sum(0)
        total += torch.einsum("mrc,mk->rck", delta, signs)
        squares += delta.square().sum(0)
        bar.update(2 * m * batch)
    bar.close()
    runner.check_finite(
        "check the model on masked inputs (parts of the inputs replaced by the "
        "baselines)"
    )
    values = total / n_pairs
    stderr = mask_stderr(
        values.reshape(batch * cols, k),
        squares.reshape(-1),
        n_pairs,
        design.order,
        (moved > 0).repeat_interleave(cols),
    ).view(batch, cols, k)
    _warn_unknown(stderr, moved, n_pairs, design.order, k)
    if cols == 1:
        return MaskEstimate(values[:, 0], stderr[:, 0])
    return MaskEstimate(values, stderr)


def _warn_unknown(
    stderr: Tensor, moved: Tensor, n_pairs: int, order: int, k: int
) -> None:
    """Warns when every pair gave the same output (the map is 0) or some
    standard errors could not be estimated (they are inf)."""
    batch = moved.shape[0]
    unknown = int(torch.isinf(stderr[:, 0]).any(1).sum().item()) if k > 1 else 0
    if n_pairs > 0 and not bool(moved.any()):
        note = " (their standard errors are inf)" if unknown else ""
        warnings.warn(
            "every mask and its complement gave the same output, so every "
            f"attribution is 0{note}: switching the feature groups between the "
            "inputs and the baselines does not move the selected output in a way "
            "the groups explain one by one (check the baselines, the target and "
            "the feature mask).",
            ConstantMaskOutputWarning,
            # _warn_unknown < mask_gradient < _estimate < _estimate_mixture <
            # attribute < log_usage < caller
            stacklevel=7,
        )
    elif unknown:
        if n_pairs == 1:
            why = (
                "one pair per example leaves no spread to estimate them from; "
                "use n_samples >= 4"
            )
        else:
            why = (
                f"every mask pair gave the same output for {unknown} of "
                f"{batch} examples, which {n_pairs} pairs (fewer than a "
                f"complete block of {order}) cannot tell from groups "
                "that cancel; use more n_samples or check the baselines"
            )
        warnings.warn(
            f"the standard errors are inf: {why}.",
            MaskStderrWarning,
            stacklevel=7,
        )


def mask_stderr(
    values: Tensor,
    squares: Tensor,
    n_pairs: int,
    order: int,
    moved: Tensor | None = None,
) -> Tensor:
    r"""
    Standard errors of :func:`mask_gradient`'s values from the pairs' output
    changes ``delta_i = f(s_i) - f(-s_i)``.

    With ``n`` pairs in blocks of ``N`` (``n = b N + r``), ``k`` groups and
    ``v`` the values:

    - **Incomplete block.** The ``r`` rows of the last block are drawn without
      replacement from its ``N``; each other group ``H``'s sign product with
      ``G`` sums to 0 over the block, so it adds ``v_H r_sum / n`` with
      variance ``r (N - r) / ((N - 1) n^2) v_H^2``: the aliasing term
      ``r (N - r) / ((N - 1) n^2) sum_{H != G} v_H^2``, 0 for complete
      blocks.
    - **More pairs than groups** (``n > k``): the residual of the additive fit
      ``delta_i ~ s_i . v`` (what the blocks do not resolve: interactions of
      three or more groups) has ``n - k`` degrees of freedom and adds ``RSS /
      ((n - k) n)``, as for least squares on an orthogonal design (``RSS =
      sum delta^2 - n |v|^2``).
    - **At most as many pairs as groups** (``2 <= n <= k``, no residual
      degrees of freedom): the larger of the aliasing term and the spread of
      ``delta_i s_iG`` as for independent pairs (which bounds the aliasing of
      higher interactions as well; conservative by up to ``sqrt((N - 1) /
      (N - n))``). With two groups a complete block is exact (no interaction
      of three groups exists): 0.
    - **One group:** every pair gives ``f(x) - f(baseline)``: 0. **One pair**
      (more than one group): ``inf``, nothing to estimate a spread from.

    Where every pair of a row gave ``delta = 0`` before a block is complete,
    the zero values may be groups that cancel on the masks drawn: ``inf``.
    A value is reported with standard error 0 only when its row's pairs
    determine it (a complete-block fit with no residual); interactions of
    three or more groups that one block aliases exactly onto a group stay
    unseen within that block (they average out over blocks).

    Args:

        values (Tensor): ``(rows, k)`` the estimated values.
        squares (Tensor): ``(rows,)`` the sums of ``delta_i^2``.
        n_pairs (int): The pairs ``n``.
        order (int): The block size ``N``.
        moved (Tensor, optional): ``(rows,)`` bool, whether any pair of the row
                    had ``delta != 0``. Default: every row moved

    Returns:
        *Tensor*: ``(rows, k)`` float64 standard errors.
    """
    values = values.to(torch.float64)
    squares = squares.to(torch.float64)
    batch, k = values.shape
    n, big_n = n_pairs, order
    if k == 1:  # every pair gives f(x) - f(baseline): exact
        return torch.zeros_like(values)
    if n <= 1:
        return torch.full_like(values, torch.inf)
    sq = values.square()
    others = sq.sum(1, keepdim=True) - sq
    r = n % big_n
    alias = r * (big_n - r) / ((big_n - 1) * n**2) * others
    if n > k:
        rss = squares - n * sq.sum(1)
        # below the rounding of squares - n |v|^2: an exact additive fit
        rss = torch.where(rss > 1e-12 * squares, rss, 0.0)
        var = alias + (rss / ((n - k) * n)).view(-1, 1)
    elif k == 2 and r == 0:  # two groups, complete blocks: exact
        var = torch.zeros_like(values)
    else:
        spread = (squares.view(-1, 1) / n - sq).clamp_min(0) / (n - 1)
        var = torch.maximum(alias, spread)
    if moved is not None and n < big_n:
        var = torch.where(moved.view(-1, 1), var, torch.inf)
    return var.sqrt()


def mask_regression(
    runner: QueryRunner,
    inputs: Tensor,
    baselines: Tensor,
    group_index: Tensor,
    n_rows: int,
    design: BernoulliDesign,
    rows_per_call: int,
    show_progress: bool = False,
) -> MaskEstimate:
    r"""
    Estimates each feature group's p-binomial semivalue ``dF/dp_G`` at ``p =
    design.keep_prob`` from ``n_rows`` masked queries per row: the
    coefficients of the least-squares fit ``f(m) ~ c + sum_G v_G m_G`` on
    independent Bernoulli(p) keep masks ``m``.

    Under independent masks the population coefficient of group ``G`` is
    ``Cov(f, m_G) / Var(m_G) = E[f | m_G = 1] - E[f | m_G = 0] = dF/dp_G``:
    the likelihood-ratio gradient ``E[f (m_G - p)] / (p (1 - p))`` with the
    additive fit as its control variate (the fit absorbs the other groups'
    effects), cross-fitted over ten folds of the rows so that the estimate is
    unbiased, with standard errors from the spread of the cross-fitted terms
    (:func:`regression_estimate`).

    Args:

        runner (QueryRunner): Sends flat rows to the forward function (``c``
                    scores per row give ``(rows, c, k)`` estimates, as for
                    :func:`mask_gradient`).
        inputs (Tensor): ``(rows, d)`` flat inputs, any dtype.
        baselines (Tensor): ``(rows, d)`` flat baselines, the dtype of
                    ``inputs``.
        group_index (Tensor): ``(d,)`` or ``(rows, d)`` group ids, as for
                    :func:`mask_gradient`.
        n_rows (int): Masked queries per row: more than ``10 (k + 1) / 9``.
        design (BernoulliDesign): The masks of the ``k`` groups.
        rows_per_call (int): Masks per row built at once.
        show_progress (bool, optional): A tqdm bar over the rows.
                    Default: False

    Returns:
        *MaskEstimate*: values and standard errors, ``(rows, k)``, float64.
    """
    batch, dim = inputs.shape
    owners = torch.arange(batch, device=inputs.device)
    masks, scores = [], []
    bar = tqdm(total=n_rows * batch, disable=not show_progress, unit="row")
    for start in range(0, n_rows, rows_per_call):
        m = design.masks(start, min(start + rows_per_call, n_rows))  # (r, k)
        keep = m[:, group_index]
        keep = keep.unsqueeze(1) if keep.dim() == 2 else keep
        rows = torch.where(keep, inputs, baselines)  # (r, rows, d)
        out = runner(rows.reshape(-1, dim), owners.repeat(m.shape[0]))
        scores.append(out.view(m.shape[0], batch, -1).to(torch.float64))
        masks.append(m)
        bar.update(m.shape[0] * batch)
    bar.close()
    runner.check_finite(
        "check the model on masked inputs (parts of the inputs replaced by the "
        "baselines)"
    )
    f = torch.cat(scores)  # (n, rows, c)
    cols = f.shape[2]
    est = regression_estimate(torch.cat(masks), f.flatten(1), design.keep_prob)
    if cols == 1:
        return est
    return MaskEstimate(
        est.values.view(batch, cols, -1), est.stderr.view(batch, cols, -1)
    )


def regression_estimate(
    masks: Tensor, scores: Tensor, keep_prob: float | None = None, folds: int = 10
) -> MaskEstimate:
    r"""
    Each group's ``dF/dp_G`` from Bernoulli(p) keep masks: the likelihood
    ratio with a cross-fitted additive control variate, and standard errors
    (see :func:`mask_regression`).

    The rows are dealt into ``folds`` folds (row ``i`` to fold ``i mod
    folds``); the least-squares fit ``h(m) = c + sum_H v_H m_H`` on the other
    folds is the control variate of a fold's rows, each of which contributes
    ``v_G + (f_i - h(m_i)) (m_iG - p) / (p (1 - p))``: exactly unbiased
    whatever the fit, since ``E[h(m) (m_G - p)] / (p (1 - p)) = v_G`` under
    independent masks. The estimate is the mean of the ``n`` terms; its
    standard error is their spread over ``sqrt(n)`` (given the fits the terms
    are independent), ``inf`` for a group that every mask kept or every mask
    dropped. With most rows in every fit, the control variate is nearly the
    least-squares fit on all rows (which is biased by ``O(1/n)`` for outputs
    that are not additive).

    Args:

        masks (Tensor): ``(n, k)`` bool keep masks, ``n (folds - 1) / folds >
                    k + 1``.
        scores (Tensor): ``(n, rows)`` the outputs, one column per input row.
        keep_prob (float, optional): The masks' keep probability ``p``.
                    Default: the masks' mean
        folds (int, optional): Folds of the cross-fit (at least 2).
                    Default: 10

    Returns:
        *MaskEstimate*: ``(rows, k)`` values and standard errors, float64.
    """
    n, k = masks.shape
    design = torch.cat([torch.ones_like(masks[:, :1]), masks], 1).to(scores)
    p = masks.double().mean() if keep_prob is None else keep_prob
    fold = torch.arange(n, device=masks.device) % folds
    total = torch.zeros((k, scores.shape[1]), dtype=scores.dtype, device=scores.device)
    squares = torch.zeros_like(total)
    for j in range(min(folds, n)):
        use = fold == j
        fit = torch.linalg.pinv(design[~use], rcond=1e-10) @ scores[~use]
        weights = (design[use, 1:] - p) / (p * (1 - p))  # (m, k)
        resid = scores[use] - design[use] @ fit  # (m, rows)
        m = resid.shape[0]
        correction = weights.T @ resid  # (k, rows): the sum of the fold's
        total += m * fit[1:] + correction
        squares += (
            m * fit[1:].square()
            + 2 * fit[1:] * correction
            + weights.square().T @ resid.square()
        )
    mean = total / n
    var = (squares / n - mean.square()).clamp_min(0) / (n - 1)
    moves = (masks.any(0) & ~masks.all(0)).view(-1, 1)
    stderr = torch.where(moves, var.sqrt(), torch.inf)
    return MaskEstimate(mean.T.contiguous(), stderr.T.contiguous())
