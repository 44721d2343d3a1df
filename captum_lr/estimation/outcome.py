r"""What one :class:`~captum_lr.LREstimator` call found: its gradients from
the call's sums (divided by the noise scales, expanded from a prior's groups),
and what the estimator reports of it (:class:`CallReport`: its ``last_*``
attributes but ``last_sigma_scale``)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from captum_lr.estimation.diagnostics import warn_uninformative
from captum_lr.estimation.frequency import FrequencyStrata
from captum_lr.estimation.loop import CallPlan
from captum_lr.estimation.strata import ChannelStrata
from captum_lr.estimation.sums import RunningSums
from captum_lr.estimation.surrogate import SurrogatePlan


class CallReport(NamedTuple):
    r"""What an estimator reports of its last call: its ``last_coverage``,
    ``last_stderr``, ``last_design``, ``last_contrast_scale``,
    ``last_expected_cosine`` and ``last_prior_cosine`` attributes, and what
    :meth:`~captum_lr.LREstimator.project` reads (``frequency``,
    ``surrogate``); all None before the first call. ``last_sigma_scale`` is
    not here: the estimator takes it from the call's running sums
    (``sums.sigma_scale``)."""

    coverage: tuple[Tensor, ...] | None = None
    stderr: tuple[Tensor, ...] | None = None
    design: str | None = None
    contrast_scale: Tensor | None = None
    frequency: FrequencyStrata | None = None
    expected_cosine: Tensor | None = None
    prior_cosine: Tensor | None = None
    surrogate: tuple[SurrogatePlan, Tensor] | None = None


def finish_call(
    call: CallPlan, sums: RunningSums, dtypes: list[torch.dtype]
) -> tuple[tuple[Tensor, ...], CallReport]:
    r"""
    The call's gradients, one per input tensor, and its report: divides the
    sums' estimate by sigma, expands a prior's groups, and warns where the
    queries carried no information
    (:func:`~captum_lr.estimation.diagnostics.warn_uninformative`).

    Args:

        call (CallPlan): The call's plan.
        sums (RunningSums): The call's running sums, after its last query.
        dtypes (list[torch.dtype]): The dtype of each input tensor.

    Returns:
        *tuple[tuple[Tensor, ...], CallReport]*: the gradients, shaped and
        typed like the inputs, and the call's report.
    """
    layout, prior, plan = call.layout, call.prior, call.plan
    grads, var, counts = sums.combine()
    grads = grads / call.sigmas
    stderr = None if var is None else (var / call.sigmas.square()).sqrt()
    warn_uninformative(sums, counts, call.n, plan.weighted)
    strata = plan.strata
    contrast = strata.contrast_scale() if isinstance(strata, ChannelStrata) else None
    frequency = strata if isinstance(strata, FrequencyStrata) else None
    expected_cosine = plan.expected_cosine()
    surrogate = isinstance(plan, SurrogatePlan)
    prior_cosine = plan.prior_cosine if surrogate else None
    if prior is not None:
        grads, counts = prior.expand(grads), prior.gather(counts)
        if stderr is not None:
            stderr = prior.gather(stderr) * prior.inv_sqrt
    report = CallReport(
        coverage=layout.split(counts),
        stderr=None if stderr is None else layout.split(stderr),
        design=plan.design,
        contrast_scale=contrast,
        frequency=frequency,
        expected_cosine=expected_cosine,
        prior_cosine=prior_cosine,
        surrogate=(plan, call.sigmas) if surrogate else None,
    )
    return layout.split(grads, dtypes), report
