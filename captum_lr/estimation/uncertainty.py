r"""How noisy is a map, and how many samples does a target accuracy need.

- :func:`attribute_with_stderr`: any LR attribution (including NoiseTunnel and
  GradientShap around one) split into independent replicates of at most the
  same total budget, with the design resolved once; returns their mean and its
  per-coordinate standard error.
- :func:`samples_for_cosine`: the ``n_samples`` that reaches an expected cosine
  with the (projected) gradient of a linear function, from the design's theory.
- The estimator's own per-coordinate standard error: ``LREstimator(...,
  track_stderr=True)`` and ``estimator.last_stderr``.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from captum.attr import GradientShap
from torch import Tensor

from captum_lr.estimation.estimator import LREstimator


def _explainer_with_estimator(attribution: Any) -> Any:
    """The LR attribution that owns the estimator (unwraps NoiseTunnel)."""
    inner = getattr(attribution, "attribution_method", attribution)
    if not isinstance(getattr(inner, "estimator", None), LREstimator):
        if hasattr(inner, "last_stderr"):
            raise TypeError(
                f"{type(inner).__name__} reports its standard errors itself: "
                "read its last_stderr after attribute()."
            )
        raise TypeError(
            "attribute_with_stderr needs an LR attribution (LRSaliency, "
            "LRIntegratedGradients, ...) or a NoiseTunnel around one, not "
            f"{type(attribution).__name__}."
        )
    return inner


def attribute_with_stderr(
    attribution: Any,
    inputs: Tensor | tuple[Tensor, ...],
    replicates: int = 8,
    **attribute_kwargs: Any,
) -> tuple[Any, Any]:
    r"""
    Attributions and their per-coordinate standard errors, for at most the
    forward rows of one ``attribute`` call.

    The estimator's design is resolved once, for the inputs, and kept for
    every replicate. A random design's ``n_samples`` is split over
    ``replicates`` independent runs (each with its own noise, and its own
    Captum random draws for NoiseTunnel and GradientShap), less one sample
    per run for the extra ``f(x)`` row each one-sided run needs; the mean of
    the runs is the attribution and ``std / sqrt(replicates)`` its standard
    error. An exact coordinate sweep (``design="auto"`` with at most
    ``n_samples`` coordinates per row) stays one: its gradients carry no
    sampling error, so Saliency, InputXGradient and IntegratedGradients maps
    are returned from one call with a standard error of 0, and for
    NoiseTunnel and GradientShap (whose own random draws remain) Captum's
    ``nt_samples`` / ``n_samples`` are split over the replicates instead.
    Where the standard error is comparable to the attribution, the map is
    noise.

    Args:

        attribution (Attribution): An LR attribution or a NoiseTunnel around one.
        inputs (Tensor or tuple[Tensor, ...]): As for ``attribute``.
        replicates (int, optional): Independent runs (at least 2).
                    Default: 8
        **attribute_kwargs: Passed to ``attribute`` (target, n_steps, ...).
                    ``return_convergence_delta`` is not supported here.

    Returns:
        *tuple* of **attributions** and **stderr**, each shaped like what
        ``attribute`` returns.

    Examples::

        >>> ig = LRIntegratedGradients(model, estimator=LREstimator(n_samples=512))
        >>> attr, se = attribute_with_stderr(ig, x, target=3, n_steps=16)
        >>> noisy = attr.abs() < 2 * se
    """
    if (
        isinstance(replicates, bool)
        or not isinstance(replicates, int)
        or replicates < 2
    ):
        raise ValueError(f"replicates must be an int >= 2, got {replicates!r}.")
    if attribute_kwargs.get("return_convergence_delta"):
        raise ValueError("attribute_with_stderr does not return convergence deltas.")
    owner = _explainer_with_estimator(attribution)
    estimator: LREstimator = owner.estimator
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    design, n, antithetic, sweep = estimator.design_for(xs)
    if sweep:
        return _split_captum_samples(attribution, inputs, replicates, attribute_kwargs)
    per_run = n // replicates if antithetic else (n + 1) // replicates - 1
    if per_run < 1:
        raise ValueError(
            f"n_samples={estimator.n_samples} is too small to split over "
            f"{replicates} replicates (each needs at least one sample, and one "
            "forward row for f(x)); raise n_samples or lower replicates."
        )
    runs = []
    try:
        for r in range(replicates):
            replica = copy.copy(estimator)
            replica.design, replica.n_samples = design, per_run
            replica.seed = (
                None if estimator.seed is None else estimator.seed + 7919 * (r + 1)
            )
            owner.gradient_func = replica
            before = replica.queries
            runs.append(attribution.attribute(inputs, **attribute_kwargs))
            estimator.queries += replica.queries - before
    finally:
        owner.gradient_func = estimator
    return _mean_and_stderr(runs, [1] * replicates)


def _split_captum_samples(
    attribution: Any, inputs: Any, replicates: int, kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """Replicates of an exact sweep: Captum's own random draws split."""
    name = None
    if hasattr(attribution, "attribution_method"):  # NoiseTunnel
        if kwargs.get("nt_type", "smoothgrad") == "vargrad":
            raise ValueError(
                "attribute_with_stderr averages replicates, which changes "
                "nt_type='vargrad' (a variance); use 'smoothgrad' or "
                "'smoothgrad_sq'."
            )
        name, default = "nt_samples", 5
    elif isinstance(attribution, GradientShap):
        name, default = "n_samples", 5  # GradientShap's random baselines
    if name is None:  # deterministic given the sweep: one call, no sampling error
        out = attribution.attribute(inputs, **kwargs)
        zeros = (
            tuple(torch.zeros_like(t) for t in out)
            if isinstance(out, tuple)
            else torch.zeros_like(out)
        )
        return out, zeros
    total = int(kwargs.get(name, default))
    count = min(replicates, total)
    sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
    runs = [attribution.attribute(inputs, **{**kwargs, name: s}) for s in sizes]
    return _mean_and_stderr(runs, sizes)


def _mean_and_stderr(runs: list[Any], sizes: list[int]) -> tuple[Any, Any]:
    """The size-weighted mean of replicate means and its standard error
    (inf, with a warning, from a single replicate)."""
    is_tuple = isinstance(runs[0], tuple)
    parts = list(zip(*runs)) if is_tuple else [runs]
    total = float(sum(sizes))
    means, errors = [], []
    for p in parts:
        stacked = torch.stack(p)
        weights = torch.tensor(sizes, dtype=stacked.dtype, device=stacked.device)
        weights = weights.view(-1, *([1] * (stacked.dim() - 1)))
        mean = (stacked * weights).sum(0) / total
        if len(runs) < 2:
            warnings.warn(
                "one replicate gives no standard error (inf); raise nt_samples "
                "or n_samples to at least 2.",
                UserWarning,
                stacklevel=3,
            )
            err = torch.full_like(mean, math.inf)
        else:
            spread = (weights * (stacked - mean).square()).sum(0) / (len(runs) - 1)
            err = (spread / total).sqrt()
        means.append(mean)
        errors.append(err)
    if is_tuple:
        return tuple(means), tuple(errors)
    return means[0], errors[0]


def samples_for_cosine(dim: int, cosine: float, design: str = "orthogonal") -> int:
    r"""
    The ``n_samples`` whose expected cosine with the gradient of a linear
    function reaches ``cosine``: ``n = cos^2 d`` for orthogonal directions,
    ``n = cos^2 (d + 1) / (1 - cos^2)`` for i.i.d. Gaussian ones. With a prior,
    pass the prior's number of groups and read the cosine as the one with the
    projected gradient. Nonlinear functions and noisy outputs need more.

    Args:

        dim (int): Coordinates per row (or groups of a prior).
        cosine (float): Target expected cosine, in (0, 1].
        design (str, optional): ``"orthogonal"`` or ``"gaussian"``.
                    Default: ``"orthogonal"``

    Returns:
        *int*: noise samples per row.

    Examples::

        >>> samples_for_cosine(3 * 112 * 112, 0.3)
        3387
    """
    if not 0 < cosine <= 1:
        raise ValueError(f"cosine must be in (0, 1], got {cosine}.")
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}.")
    c2 = cosine * cosine
    if design == "orthogonal":
        return min(dim, math.ceil(c2 * dim - 1e-9))
    if design == "gaussian":
        if cosine >= 1:
            raise ValueError("i.i.d. Gaussian directions never reach cosine 1.")
        return math.ceil(c2 * (dim + 1) / (1 - c2) - 1e-9)
    raise ValueError(f"design must be 'orthogonal' or 'gaussian', not {design!r}.")
