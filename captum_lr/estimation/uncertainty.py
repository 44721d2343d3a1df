r"""How noisy is a map, and how many samples does a target accuracy need.

- :func:`attribute_with_stderr`: any LR attribution (including NoiseTunnel and
  GradientShap around one) split into independent replicates of the same total
  budget; returns their mean and its per-coordinate standard error.
- :func:`samples_for_cosine`: the ``n_samples`` that reaches an expected cosine
  with the (projected) gradient of a linear function, from the design's theory.
- The estimator's own per-coordinate standard error: ``LREstimator(...,
  track_stderr=True)`` and ``estimator.last_stderr``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
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
    Attributions and their per-coordinate standard errors, for the same total
    query budget as one ``attribute`` call.

    The estimator's ``n_samples`` is split over ``replicates`` independent
    runs (each with its own noise, and its own Captum random draws for
    NoiseTunnel and GradientShap); the mean of the runs is the attribution and
    ``std / sqrt(replicates)`` its standard error. Where the standard error is
    comparable to the attribution, the map is noise.

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
    per_run = max(1, estimator.n_samples // replicates)
    runs = []
    try:
        for r in range(replicates):
            replica = copy.copy(estimator)
            replica.n_samples = per_run
            replica.seed = (
                None if estimator.seed is None else estimator.seed + 7919 * (r + 1)
            )
            owner.gradient_func = replica
            before = replica.queries
            runs.append(attribution.attribute(inputs, **attribute_kwargs))
            estimator.queries += replica.queries - before
    finally:
        owner.gradient_func = estimator
    is_tuple = isinstance(runs[0], tuple)
    parts = list(zip(*runs)) if is_tuple else [runs]
    means = tuple(torch.stack(p).mean(0) for p in parts)
    errors = tuple(torch.stack(p).std(0) / math.sqrt(replicates) for p in parts)
    if is_tuple:
        return means, errors
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
