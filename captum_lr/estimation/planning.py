r"""What an :class:`~captum_lr.LREstimator` call will do, resolved before its
first query: the design and samples per row (what ``design="auto"`` resolves
to), the forward rows it sends, the noise scales, and the call's
:class:`~captum_lr.estimation.loop.CallPlan`.

The functions read the estimator's options (:class:`EstimatorOptions`: its
public attributes) when they are called, so options changed between calls
are followed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_lr.estimation.designs import SamplingPlan, image_channels, resolve_design
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.loop import CallPlan
from captum_lr.estimation.noise_scale import probe_pairs
from captum_lr.estimation.priors import BoundPrior, GroupPrior
from captum_lr.estimation.rows import StreamLayout, assign_streams, rms_sigmas
from captum_lr.estimation.streams import CounterNoise, call_key
from captum_lr.estimation.supports import Blocks, BlockSpec, FeatureGroups, Support
from captum_lr.estimation.surrogate import Surrogate, resolve_surrogate_design
from captum_lr.estimation.surrogate_strata import make_surrogate_plan

AUTO_SIGMA = {"coordinate": 5e-3, "random": 1e-4}
r"""``sigma="auto"``: for coordinate sweeps (central differences, bias
O(sigma^2), one coordinate per query so rounding matters) the fraction of each
coordinate's magnitude (floored by ``rows.COORDINATE_FLOOR`` of its tensor's
RMS); for random designs (one-sided, bias O(sigma), many coordinates per
query) the fraction of each input tensor's RMS."""


class DesignChoice(NamedTuple):
    r"""What :meth:`~captum_lr.LREstimator.design_for` returns."""

    design: str
    n_samples: int
    antithetic: bool
    sweep: bool


class EstimatorOptions(Protocol):
    r"""The options of an :class:`~captum_lr.LREstimator` that planning reads
    (see its arguments)."""

    n_samples: int
    sigma: float | str
    block: BlockSpec | None
    feature_mask: Tensor | tuple[Tensor, ...] | None
    design: str
    antithetic: bool | None
    prior: GroupPrior | Surrogate | None
    seed: int | None
    shared_noise: bool
    max_batch_size: int


def bind_prior(opts: EstimatorOptions, layout: InputLayout) -> BoundPrior:
    r"""The estimator's :class:`GroupPrior` bound to ``layout``."""
    assert isinstance(opts.prior, GroupPrior)
    return opts.prior.bind(layout)


def resolve(opts: EstimatorOptions, layout: InputLayout) -> tuple[str, int, bool]:
    r"""
    The concrete design, samples per row and whether they are antithetic,
    for this layout (what ``design="auto"`` and ``antithetic=None`` resolve
    to).

    Args:

        opts (EstimatorOptions): The estimator.
        layout (InputLayout): The layout of the call's inputs.

    Returns:
        *tuple[str, int, bool]*: the design, the samples per row and whether
        they are antithetic.
    """
    if isinstance(opts.prior, Surrogate):
        return resolve_surrogate_design(
            opts.design, layout.dim, opts.n_samples, opts.antithetic
        )
    if opts.prior is not None:
        k, channels, flat = bind_prior(opts, layout).space.dim, None, None
    else:
        k, channels, flat = layout.dim, image_channels(layout), layout
    whole_input = opts.block is None and opts.feature_mask is None
    design, n = resolve_design(
        opts.design, whole_input, k, opts.n_samples, channels, flat
    )
    sweep = design == "coordinate"
    antithetic = sweep if opts.antithetic is None else opts.antithetic
    return design, n, antithetic


def design_choice(opts: EstimatorOptions, layout: InputLayout) -> DesignChoice:
    r"""What a call on inputs of this layout will do (see
    :meth:`~captum_lr.LREstimator.design_for`)."""
    design, n, antithetic = resolve(opts, layout)
    if isinstance(opts.prior, GroupPrior):
        dim = bind_prior(opts, layout).space.dim
    else:
        dim = layout.dim
    sweep = design == "coordinate" and n >= dim
    return DesignChoice(design, n, antithetic, sweep)


def query_rows(opts: EstimatorOptions, layout: InputLayout) -> int:
    r"""The forward rows one call on inputs of this layout sends (see
    :meth:`~captum_lr.LREstimator.queries_for`)."""
    design, n, antithetic = resolve(opts, layout)
    probes = sigma_probes(opts, design, n, antithetic)
    per_row = n * 2 if antithetic else n + 1 + probes
    return layout.batch_size * per_row


def sigma_probes(opts: EstimatorOptions, design: str, n: int, antithetic: bool) -> int:
    r"""Samples per row sent as antithetic pairs to choose ``sigma="auto"``
    (:mod:`~captum_lr.estimation.noise_scale`): one-sided random designs."""
    if opts.sigma != "auto" or antithetic or design == "coordinate":
        return 0
    return min(probe_pairs(n), n)


def sigmas(
    opts: EstimatorOptions,
    inputs: tuple[Tensor, ...],
    layout: InputLayout,
    design: str,
    examples: Tensor,
    context: StreamLayout | None,
) -> Tensor:
    r"""``(rows, d)`` noise scale of every row and coordinate (``context``:
    the ``noise_streams`` the call is in, if any)."""
    if opts.sigma != "auto":
        value = torch.full((1, layout.dim), float(opts.sigma), dtype=layout.dtype)
        return value.to(layout.device).expand(layout.batch_size, layout.dim)
    reference = None if context is None else context.reference
    fraction = AUTO_SIGMA["coordinate" if design == "coordinate" else "random"]
    return rms_sigmas(
        inputs, reference, layout, fraction, examples, design == "coordinate"
    )


def plan_call(
    opts: EstimatorOptions,
    inputs: tuple[Tensor, ...],
    layout: InputLayout,
    context: StreamLayout | None,
    target: TargetType = None,
    additional_forward_args: Any = None,
) -> CallPlan:
    r"""
    Resolves everything a call needs before its first query (with a
    :class:`~captum_lr.Surrogate` prior, its gradient: the surrogate is run
    here).

    Args:

        opts (EstimatorOptions): The estimator.
        inputs (tuple[Tensor, ...]): The call's inputs.
        layout (InputLayout): Their layout.
        context (StreamLayout, optional): The ``noise_streams`` the call is
                    in, if any.
        target (int, tuple, Tensor or list, optional): The call's target
                    (read by a surrogate prior only).
                    Default: None
        additional_forward_args (Any, optional): The call's extra forward
                    arguments (read by a surrogate prior only).
                    Default: None

    Returns:
        *CallPlan*: the call's layout, bound prior, sampling plan, noise
        scales, samples per row, antithetic flag and noise-scale probes.
    """
    device = layout.device
    grouped = isinstance(opts.prior, GroupPrior)
    prior = bind_prior(opts, layout) if grouped else None
    streams, examples = assign_streams(
        context, layout.batch_size, opts.shared_noise, device
    )
    if opts.seed is None:
        key = int(torch.randint(0, 2**32, (1,)).item())
    else:
        key = call_key(opts.seed, layout.shapes)
    if isinstance(opts.prior, Surrogate):
        return _plan_surrogate(
            opts,
            inputs,
            layout,
            target,
            additional_forward_args,
            key,
            streams,
            examples,
            context,
        )
    plan = SamplingPlan(
        opts.design,
        _support(opts, layout),
        prior.space if prior is not None else layout.space,
        opts.n_samples,
        CounterNoise(key, device),
        streams,
        layout=None if prior is not None else layout,
    )
    scales = sigmas(opts, inputs, layout, plan.design, examples, context)
    if prior is not None:  # the mean over each group
        scales = prior.reduce(scales) / prior.sizes.sqrt()
    design, n, antithetic = resolve(opts, layout)
    probes = sigma_probes(opts, design, n, antithetic)
    return CallPlan(layout, prior, plan, scales, n, antithetic, probes)


def _plan_surrogate(
    opts: EstimatorOptions,
    inputs: tuple[Tensor, ...],
    layout: InputLayout,
    target: TargetType,
    additional_forward_args: Any,
    key: int,
    streams: Tensor,
    examples: Tensor,
    context: StreamLayout | None,
) -> CallPlan:
    """The plan of a call with a :class:`Surrogate` prior (its gradient is
    computed here, before any query to the model)."""
    assert isinstance(opts.prior, Surrogate)
    design, n, antithetic = resolve(opts, layout)
    scales = sigmas(opts, inputs, layout, design, examples, context)
    grads = opts.prior.gradients(
        inputs, layout, target, additional_forward_args, opts.max_batch_size
    )
    plan = make_surrogate_plan(
        layout,
        grads * scales,
        n,
        CounterNoise(key, layout.device),
        streams,
        opts.prior.unbiased,
    )
    probes = sigma_probes(opts, design, n, antithetic)
    return CallPlan(layout, None, plan, scales, n, antithetic, probes)


def _support(opts: EstimatorOptions, layout: InputLayout) -> Support:
    if opts.block is not None:
        return Blocks(opts.block, layout)
    if opts.feature_mask is not None:
        return FeatureGroups(opts.feature_mask, layout)
    return Support()
