r"""What a call tells its user: warnings where the estimate is unreliable."""

from __future__ import annotations

import math

from torch import Tensor

from captum_lr.estimation.designs import SamplingPlan
from captum_lr.estimation.sums import RunningSums
from captum_lr.warn import warn_user

LOW_COSINE = 0.5
r"""The expected cosine below which a call warns (:class:`LowAccuracyWarning`)."""


class UnperturbedFeaturesWarning(UserWarning):
    r"""Some coordinates were never perturbed; their estimate is 0."""


class ConstantOutputWarning(UserWarning):
    r"""Every perturbed query returned the unperturbed output: sigma too small."""


class LowAccuracyWarning(UserWarning):
    r"""The design's expected cosine with the gradient is low for this budget."""


def warn_uninformative(sums: RunningSums, counts: Tensor, n: int, weighted: bool):
    r"""Warns where most queries did not move the output, and where some
    coordinates were never perturbed (designs that perturb part of a row)."""
    total = n * sums.rows
    unchanged = 1.0 - int(sums.moved.item()) / total
    if unchanged > 0.5:
        warn_user(
            f"{unchanged:.0%} of the perturbed queries returned exactly the "
            "unperturbed output and carry no information about the gradient, "
            "so the estimate is noisy (0 where no query moved): sigma is small "
            "for this model (quantised inputs or outputs, hard labels, rounded "
            "API outputs); raise sigma.",
            ConstantOutputWarning,
        )
    if weighted:
        n_missed = int((counts <= 0).sum().item())
        if n_missed:
            warn_user(
                f"{n_missed} of {counts.numel()} coordinates were never "
                f"perturbed by the {n} samples per row; their gradient "
                "estimate is 0 (see LREstimator.last_coverage). Raise "
                "n_samples or use larger blocks.",
                UnperturbedFeaturesWarning,
            )


def warn_low_accuracy(plan: SamplingPlan, figure: Tensor | None) -> bool:
    r"""
    Warns where the typical row's expected cosine is below :data:`LOW_COSINE`,
    with the ``n_samples`` that reaches 0.9.

    Returns:
        *bool*: whether it warned.
    """
    if figure is None:
        return False
    typical = float(figure.median())
    if typical >= LOW_COSINE:
        return False
    warn_user(
        f"the {plan.design!r} design with n_samples={plan.n_samples} on rows of "
        f"{plan.space.dim} coordinates has an expected cosine of about "
        f"{typical:.2f} with the gradient (for a linear model; "
        f"LREstimator.last_expected_cosine): n_samples={samples_for(plan, 0.9)} "
        "reaches 0.9. Averaging over path steps or noise-tunnel samples with "
        "independent noise also helps; a prior (preset 'grid14') or "
        "LRMaskGradient gives coarser maps for far fewer rows. This warning is "
        "shown once per estimator.",
        LowAccuracyWarning,
    )
    return True


def samples_for(plan: SamplingPlan, cosine: float) -> int:
    r"""The ``n_samples`` whose expected cosine reaches ``cosine`` (typical row)."""
    d = plan.space.dim
    if plan.strata is not None:
        low, high = plan.n_samples, d
        while low < high:  # bisection on the strata's own figure
            mid = (low + high) // 2
            if float(plan.strata.expected_cosine(mid).median()) >= cosine:
                high = mid
            else:
                low = mid + 1
        return low
    c2 = cosine * cosine
    if plan.design == "gaussian":
        return math.ceil(c2 * (d + 1) / (1 - c2))
    return min(d, math.ceil(c2 * d))
