r"""How many forward rows an ``attribute`` call will spend, computed before it runs.

:func:`estimate_queries` runs the call once with a stand-in forward function
that answers zeros and counts the rows it is asked, so the count is exact for
any LR class, any Captum argument (``n_steps``, ``internal_batch_size``,
``return_convergence_delta``, GradientShap's ``n_samples``) and
:class:`~captum.attr.NoiseTunnel` around them, without querying the model.
The dry run saves and restores the global random generators (Captum's
GradientShap and NoiseTunnel draw from them) and the estimator's counter, so
the real call afterwards is unaffected.
"""

from __future__ import annotations

import random
import warnings
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor


class _RowCounter:
    """A forward function returning zeros shaped for the target; counts rows."""

    def __init__(self, output_shape: tuple[int, ...]) -> None:
        self.output_shape = output_shape
        self.rows = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        x = args[0]
        n = x.shape[0]
        self.rows += n
        dtype = x.dtype if x.dtype.is_floating_point else torch.float32
        return torch.zeros((n, *self.output_shape), device=x.device, dtype=dtype)


def _output_shape(target: Any) -> tuple[int, ...]:
    """The smallest output shape per row every target index fits in."""
    if target is None:
        return ()
    if isinstance(target, Tensor):
        if target.dtype.is_floating_point:
            raise ValueError("target must hold integer class indices.")
        if target.numel() == 0:
            return ()
        return (int(target.max().item()) + 1,)
    if isinstance(target, bool):
        raise TypeError("target must be None, an int, a tuple, a tensor or a list.")
    if isinstance(target, int):
        return (target + 1,)
    if isinstance(target, tuple):
        return tuple(int(t) + 1 for t in target)
    if isinstance(target, list):
        shapes = [_output_shape(t) for t in target]
        if not shapes:
            return ()
        width = max(len(s) for s in shapes)
        return tuple(
            max(s[i] if i < len(s) else 1 for s in shapes) for i in range(width)
        )
    raise TypeError(
        f"target has type {type(target).__name__}; use None, an int, a tuple, a "
        "tensor or a list, as in Captum."
    )


def estimate_queries(attribution: Any, inputs: Any, **attribute_kwargs: Any) -> int:
    r"""
    The number of forward rows ``attribution.attribute(inputs, **kwargs)`` will
    send, found by a dry run that does not call the model.

    With a :class:`~captum_lr.BlackBox` as forward function, rows answered from
    its cache or repeated within a call are not paid again, so the paid queries
    are at most this number.

    Args:

        attribution (Attribution): An LR attribution (``LRSaliency``,
                    ``LRInputXGradient``, ``LRIntegratedGradients``,
                    ``LRGradientShap``, ``LRMaskGradient``), a
                    :class:`~captum.attr.NoiseTunnel`
                    around one, or any Captum attribution whose forward
                    function is ``forward_func``.
        inputs (Tensor or tuple[Tensor, ...]): The inputs of the call.
        **attribute_kwargs: The other arguments of the call (``target``,
                    ``baselines``, ``n_steps``, ``internal_batch_size``,
                    ``return_convergence_delta``, ``nt_samples``, ...).

    Returns:
        *int*: forward rows, including Captum's own (convergence delta).

    Examples::

        >>> ig = LRIntegratedGradients(api, estimator=LREstimator(n_samples=64))
        >>> estimate_queries(ig, x, target=3, n_steps=16)
        2176
    """
    holder = getattr(attribution, "attribution_method", attribution)
    if not hasattr(holder, "forward_func") or not hasattr(attribution, "attribute"):
        raise TypeError(
            f"{type(attribution).__name__} is not a Captum attribution with a "
            "forward_func."
        )
    layer = getattr(holder, "layer", None)
    if layer is not None:
        raise TypeError(
            f"estimate_queries cannot count the rows of {type(holder).__name__}: "
            "a layer or neuron method perturbs the activation of "
            f"{type(layer).__name__}, which only the model's own forward pass "
            "produces (the dry run does not call the model). Run it on one "
            "example and read its .queries (rows grow with the batch), or use "
            "estimator.queries_for(activation) for each gradient it takes."
        )
    counter = _RowCounter(_output_shape(attribute_kwargs.get("target")))
    estimator = getattr(holder, "estimator", None)
    # a dry run must not count its rows nor use up the one accuracy warning
    quiet = getattr(estimator, "dry_run", None)
    spent = None if quiet is not None else getattr(estimator, "queries", None)
    own = None if estimator is not None else getattr(holder, "queries", None)
    # what the last real call left (last_stderr, last_design, ...), not the dry run's
    results = [
        (obj, {k: v for k, v in vars(obj).items() if k.startswith("last_")})
        for obj in (holder, estimator)
        if obj is not None and hasattr(obj, "__dict__")
    ]
    saved_forward = holder.forward_func
    rng = (
        torch.random.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    )
    holder.forward_func = counter
    try:
        with warnings.catch_warnings(), quiet() if quiet else nullcontext():
            warnings.simplefilter("ignore")
            attribution.attribute(inputs, **attribute_kwargs)
    finally:
        holder.forward_func = saved_forward
        if spent is not None:
            estimator.queries = spent
        if isinstance(own, int):  # LRMaskGradient counts its own rows
            holder.queries = own
        for obj, saved in results:
            for key in [k for k in vars(obj) if k.startswith("last_")]:
                if key not in saved:
                    delattr(obj, key)
            vars(obj).update(saved)
        torch.random.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        if rng[3] is not None:
            torch.cuda.set_rng_state_all(rng[3])
    return counter.rows
