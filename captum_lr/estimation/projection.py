r"""What an :class:`~captum_lr.LREstimator` estimates of a gradient
(:meth:`~captum_lr.LREstimator.project`): its projection onto the prior's
subspace, for the channel and frequency strata the part the last call's
probes reached, otherwise the gradient itself."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from captum_lr.estimation.frequency import FrequencyStrata
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.planning import EstimatorOptions, bind_prior, resolve
from captum_lr.estimation.priors import SharedChannels
from captum_lr.estimation.surrogate import Surrogate, SurrogatePlan, surrogate_project


class LastEstimate(NamedTuple):
    r"""What the last call decided per row that :func:`project_gradients` needs: the
    channel strata's contrast scale, the frequency strata, and a surrogate's
    plan with its noise scales."""

    contrast_scale: Tensor | None
    frequency: FrequencyStrata | None
    surrogate: tuple[SurrogatePlan, Tensor] | None


def project_gradients(
    opts: EstimatorOptions,
    layout: InputLayout,
    grads: tuple[Tensor, ...],
    last: LastEstimate,
) -> tuple[Tensor, ...]:
    r"""The projection of ``grads`` (shaped like inputs of ``layout``) on what
    the estimator estimates (see :meth:`LREstimator.project`)."""
    dtypes = [g.dtype for g in grads]
    if isinstance(opts.prior, Surrogate):
        plan, sigmas = last.surrogate or (None, None)
        return layout.split(surrogate_project(plan, layout, grads, sigmas), dtypes)
    if opts.prior is not None:
        bound = bind_prior(opts, layout)
    else:
        design, n, _ = resolve(opts, layout)
        if design == "orthogonal-frequency" and n < layout.dim:
            flat = _frequency_project(last.frequency, layout, grads)
            return layout.split(flat, dtypes)
        if design != "orthogonal-channels" or n >= layout.dim:
            return grads
        scale = last.contrast_scale
        if scale is None or scale.shape[0] != layout.batch_size:
            raise ValueError(
                "with the 'orthogonal-channels' design what is estimated "
                "depends on each row's probes: call the estimator on these "
                "inputs first, then project."
            )
        flat = layout.flatten(grads)
        mean = SharedChannels().bind(layout).project(flat)
        scale = scale.to(flat.device, flat.dtype).unsqueeze(1)
        return layout.split(mean + scale * (flat - mean), dtypes)
    return layout.split(bound.project(layout.flatten(grads)), dtypes)


def _frequency_project(
    strata: FrequencyStrata | None, layout: InputLayout, grads: tuple[Tensor, ...]
) -> Tensor:
    """The last call's ``sum_b s_b P_b g`` of the frequency strata."""
    if strata is None or strata.later.shape[0] != layout.batch_size:
        raise ValueError(
            "with the 'orthogonal-frequency' design what is estimated "
            "depends on each row's probes: call the estimator on these "
            "inputs first, then project."
        )
    flat = layout.flatten(grads).to(strata.dtype)
    return strata.project(flat.to(strata.stratum.device))
