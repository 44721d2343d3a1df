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
    r"""
    The projection of ``grads`` on what the estimator estimates (see
    :meth:`~captum_lr.LREstimator.project`).

    Args:

        opts (EstimatorOptions): The estimator.
        layout (InputLayout): The layout of the inputs the estimator is
                    called on.
        grads (tuple[Tensor, ...]): Gradients shaped like those inputs.
        last (LastEstimate): What the estimator's last call decided per row.

    Returns:
        *tuple[Tensor, ...]*: the projected gradients, shaped like ``grads``
        (``grads`` itself where the whole gradient is estimated); a
        ``ValueError`` where the projection depends on a last call that was
        not on inputs of this batch size.
    """
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
            raise _needs_a_call("orthogonal-channels")
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
        raise _needs_a_call("orthogonal-frequency")
    flat = layout.flatten(grads).to(strata.dtype)
    return strata.project(flat.to(strata.stratum.device))


def _needs_a_call(design: str) -> ValueError:
    """The error of a projection asked for before a call on these inputs."""
    return ValueError(
        f"with the '{design}' design what is estimated depends on each row's "
        "probes: call the estimator on these inputs first, then project."
    )
