r"""Captum's gradient attributions with the likelihood-ratio estimator as engine.

Each class is the Captum class of the same name without ``LR``; only the
gradient engine differs. ``attribute`` and every argument are inherited, so
``internal_batch_size``, ``return_convergence_delta``, targets, tuple inputs,
``additional_forward_args`` and :class:`captum.attr.NoiseTunnel` behave as in
Captum.

Before Captum sees them, ``attribute`` checks its arguments and raises a
``TypeError`` (wrong kind of object: a list, a NumPy array) or a ``ValueError``
(wrong shape, device or value: baselines that do not fit the inputs,
``n_steps=0``, NaN or Inf in the inputs or baselines, ``meta`` tensors) that
names the argument, gives shapes rather than values, and says what to change.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from captum._utils.typing import (
    BaselineType,
    TargetType,
)
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    Saliency,
)
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS
from captum.log import log_usage
from torch import Tensor

from captum_lr.attr.checks import input_tensors, kind
from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.queries import CountingForward
from captum_lr.warn import silence_requires_grad_warning

# Captum's Saliency and InputXGradient warn that the inputs "did not already
# require gradients"; with an LREstimator as gradient function they need none.
silence_requires_grad_warning()


class UsesEstimator:
    """The mixin of the LR classes (here, in :mod:`captum_lr.attr.layer` and
    :mod:`captum_lr.attr.neuron`): installs an :class:`LREstimator` as the
    instance's ``gradient_func``.

    Captum's Saliency and InputXGradient set ``requires_grad`` on the inputs and
    warn when they did not have it; the estimator needs no gradients, so that
    warning is off for the LR classes (:mod:`captum_lr.warn`).
    """

    estimator: LREstimator
    # read by is_lr_attribution, also for a custom estimator
    _captum_lr_forward_only = True

    def _install(self, estimator: LREstimator | None) -> None:
        if estimator is None:
            estimator = LREstimator()
        elif not callable(estimator):
            raise TypeError(
                "estimator must be an LREstimator (or a callable with the "
                f"signature of Captum's compute_gradients), not {estimator!r}."
            )
        self.estimator = estimator
        # Captum's GradientAttribution.__init__ sets gradient_func on the
        # instance; it must be replaced after super().__init__().
        self.gradient_func = estimator
        # Rows Captum sends itself (convergence delta) count with the
        # estimator's; the estimator unwraps this and counts its own rows once.
        counter = getattr(estimator, "count_queries", None)
        if counter is not None:
            self.forward_func = CountingForward(self.forward_func, counter)

    def _noise_streams(
        self, layout: str, size: int, reference: tuple[Tensor, ...]
    ) -> AbstractContextManager[Any]:
        """The estimator's noise streams for Captum's row layout (nothing for a
        custom gradient function)."""
        streams = getattr(self.estimator, "noise_streams", None)
        if streams is None:
            return nullcontext()
        return streams(layout, size, reference)

    @property
    def queries(self) -> int:
        r"""Forward rows spent so far: the estimator's queries and the rows Captum
        sends directly (e.g. for the convergence delta)."""
        return self.estimator.queries


def is_lr_attribution(attribution: Any) -> bool:
    r"""
    Whether ``attribution`` is an instance of an LR class (a
    :class:`UsesEstimator`), whatever its estimator.

    Args:

        attribution (Any): A Captum attribution (anything else gives False).

    Returns:
        *bool*
    """
    return getattr(attribution, "_captum_lr_forward_only", False) is True


# ------------------------------------------------------------------ checks
# Run before Captum's own assertions, which print whole tensors and do not say
# what to change. Messages name the argument and give shapes, never values.


def _shape(t: Tensor | tuple[Any, ...]) -> str:
    """``(2, 4)``, ``(4,)``; a str entry is written bare: ``(k, 4)``."""
    return str(tuple(t.shape if isinstance(t, Tensor) else t)).replace("'", "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_inputs(inputs: Any) -> tuple[tuple[Tensor, ...], list[str]]:
    r"""
    The input tensors and their names in messages, or a ``TypeError`` (not a
    tensor or tuple of tensors) or ``ValueError`` (not floating, 0-dimensional,
    on the ``meta`` device, rows that differ between tensors, NaN or Inf).

    Args:

        inputs (Any): The ``inputs`` argument of an ``attribute`` call.

    Returns:
        *tuple[tuple[Tensor, ...], list[str]]*: the tensors and their names.
    """
    xs, names = input_tensors(inputs)
    for name, x in zip(names, xs):
        _check_device(x, name)
        if not (x.dtype.is_floating_point):
            raise ValueError(
                f"{name} has dtype {x.dtype}; the likelihood-ratio estimator adds "
                "Gaussian noise and needs floating-point inputs: pass .float() "
                "(for token ids, explain the embeddings instead)."
            )
        if x.dim() == 0:
            raise ValueError(
                f"{name} is a 0-dimensional tensor; inputs need the examples "
                "along a first dimension: pass x.unsqueeze(0)."
            )
    batch = xs[0].shape[0]
    for name, x in zip(names[1:], xs[1:]):
        if x.shape[0] != batch:
            raise ValueError(
                f"{name} has shape {_shape(x)} but {names[0]} has "
                f"{_shape(xs[0])}: every tensor of a tuple input needs one row per "
                f"example ({batch})."
            )
    for name, x in zip(names, xs):
        _check_finite(x, name)
    return xs, names


def _check_device(t: Tensor, name: str) -> None:
    if t.device.type == "meta":
        raise ValueError(
            f"{name} is on the 'meta' device: meta tensors have a shape but no "
            "values, and the likelihood-ratio estimator must evaluate the model "
            "at perturbed values of the inputs. Pass real tensors; to know what a "
            "call costs, call captum_lr.estimate_queries with real tensors of "
            "the same shape (torch.zeros(shape)): it does not run the model."
        )


def _check_finite(t: Tensor, name: str) -> None:
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    bad = ~finite
    n_bad = int(bad.sum())
    n_nan = int(torch.isnan(t).sum())
    rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten().tolist()
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    where = f"row {shown}" if len(rows) == 1 else f"{len(rows)} rows ({shown})"
    raise ValueError(
        f"{name} (shape {_shape(t)}) holds {_plural(n_bad, 'non-finite value')} "
        f"({n_nan} NaN, {n_bad - n_nan} Inf) in {where}. Every query the "
        "estimator builds from them is non-finite, whatever the model: replace "
        "them (e.g. torch.nan_to_num, or the imputation the model was trained "
        "with) or drop those rows."
    )


def _check_target(target: TargetType, batch: int) -> None:
    if isinstance(target, list):
        n = len(target)
    elif isinstance(target, Tensor) and target.dim() == 1 and target.numel() > 1:
        n = target.shape[0]
    else:
        return
    if n != batch:
        raise ValueError(
            f"target has {n} entries but the inputs have {batch} rows; give one "
            "target per row, or a single int (or tuple) for all rows."
        )


def check_positive_int(value: Any, name: str, hint: str) -> None:
    r"""
    Raises a ``TypeError`` unless ``value`` is an int (not a bool), a
    ``ValueError`` unless it is at least 1.

    Args:

        value (Any): The argument's value.
        name (str): The argument's name, for the message.
        hint (str): What the argument is, ending the message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, not {kind(value)}; {hint}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}; {hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def _check_path_baseline(b: Any, x: Tensor, name: str, x_name: str) -> Any:
    """One baseline of integrated gradients: a number, or a tensor shaped like
    ``x`` or like one row of it. 0-dimensional tensors become numbers."""
    if isinstance(b, bool) or not (_is_number(b) or isinstance(b, Tensor)):
        raise TypeError(
            f"{name} is {kind(b)}; a baseline is a number (e.g. 0.0), or a "
            f"tensor of shape {_shape(x)} (one per example) or "
            f"{_shape((1, *x.shape[1:]))} (one for all)."
        )
    if _is_number(b):
        if not math.isfinite(float(b)):
            raise ValueError(f"{name} is {float(b)}; use a finite baseline value.")
        return b
    _check_device(b, name)
    if b.dim() == 0:
        if not bool(torch.isfinite(b)):
            raise ValueError(f"{name} is {b.item()}; use a finite baseline value.")
        return b.item()
    one_row = (1, *x.shape[1:])
    if tuple(b.shape) not in (tuple(x.shape), one_row):
        raise ValueError(
            f"{name} has shape {_shape(b)} but {x_name} has shape {_shape(x)}: "
            f"use a tensor of shape {_shape(x)} (one baseline per example) or "
            f"{_shape(one_row)} (one baseline for all), or a number."
        )
    if b.device != x.device:
        raise ValueError(
            f"{name} is on {b.device} but {x_name} on {x.device}: move it with "
            f".to({x_name.split('[')[0]}.device)."
        )
    _check_finite(b, name)
    return b


def _split_baselines(baselines: Any, xs: tuple[Tensor, ...]) -> tuple[Any, ...]:
    if isinstance(baselines, list):
        raise TypeError(
            "baselines is a list; pass a tuple with one baseline per input "
            "tensor (tuple(baselines)), as Captum does."
        )
    if not isinstance(baselines, tuple):
        return (baselines,)
    if len(baselines) != len(xs):
        raise ValueError(
            f"baselines is a tuple of {len(baselines)} but the inputs are "
            f"{_plural(len(xs), 'tensor')}: give one baseline per input tensor."
        )
    return baselines


def _check_path_baselines(
    baselines: BaselineType, xs: tuple[Tensor, ...], names: list[str]
) -> BaselineType:
    """Integrated gradients' baselines, checked; 0-dim tensors become numbers."""
    if baselines is None:
        return None
    parts = _split_baselines(baselines, xs)
    if len(parts) != len(xs):
        raise ValueError(
            f"the inputs are a tuple of {len(xs)} tensors but baselines is a "
            "single value: pass a tuple with one baseline per input tensor (a "
            "number for each applies it to every coordinate)."
        )
    bnames = (
        [f"baselines[{i}]" for i in range(len(xs))]
        if isinstance(baselines, tuple)
        else ["baselines"]
    )
    checked = tuple(
        _check_path_baseline(b, x, bn, xn)
        for b, x, bn, xn in zip(parts, xs, bnames, names)
    )
    return checked if isinstance(baselines, tuple) else checked[0]


def _check_distribution(
    baselines: Any, inputs: Any, xs: tuple[Tensor, ...], names: list[str]
) -> Any:
    """GradientShap's baseline distribution, resolved (callables are called as
    Captum calls them) and checked."""
    if baselines is None:
        row = xs[0].shape[1:]
        raise ValueError(
            "GradientShap needs baselines: a distribution of reference inputs to "
            f"draw from, a tensor of shape {_shape(('k', *row))} with k >= 1 rows, "
            f"e.g. torch.zeros{_shape((1, *row))}, blur_baseline(x), or examples "
            "from the training data (a tuple of such tensors for tuple inputs)."
        )
    if callable(baselines) and not isinstance(baselines, Tensor):
        params = inspect.signature(baselines).parameters
        baselines = baselines() if len(params) == 0 else baselines(inputs)
    parts = _split_baselines(baselines, xs)
    tupled = isinstance(baselines, tuple)
    if len(parts) != len(xs):
        raise ValueError(
            f"the inputs are a tuple of {len(xs)} tensors but baselines is a "
            "single tensor: pass a tuple with one baseline tensor per input."
        )
    for i, (b, x, xn) in enumerate(zip(parts, xs, names)):
        bn = f"baselines[{i}]" if tupled else "baselines"
        shape = _shape(("k", *x.shape[1:]))
        if i > 0 and _is_number(b):  # Captum accepts numbers after the first
            if not math.isfinite(float(b)):
                raise ValueError(f"{bn} is {float(b)}; use a finite baseline value.")
            continue
        if not isinstance(b, Tensor):
            raise TypeError(
                f"{bn} is {kind(b)}; GradientShap draws baselines from a "
                f"distribution: pass a tensor of shape {shape} with k >= 1 rows "
                f"(e.g. torch.zeros{_shape((1, *x.shape[1:]))} for one all-zero "
                "baseline)."
            )
        _check_device(b, bn)
        if b.dim() == 0 or tuple(b.shape[1:]) != tuple(x.shape[1:]) or len(b) == 0:
            raise ValueError(
                f"{bn} has shape {_shape(b)} but {xn} has shape {_shape(x)}: "
                f"GradientShap draws baselines from a tensor of shape {shape}, "
                "k >= 1 reference rows shaped like one row of the inputs."
            )
        if b.device != x.device:
            raise ValueError(
                f"{bn} is on {b.device} but {xn} on {x.device}: move it with "
                f".to({xn.split('[')[0]}.device)."
            )
        _check_finite(b, bn)
    return baselines


def _check_stdevs(stdevs: Any, n_inputs: int) -> None:
    values = stdevs if isinstance(stdevs, tuple) else (stdevs,)
    if isinstance(stdevs, tuple) and len(stdevs) != n_inputs:
        raise ValueError(
            f"stdevs is a tuple of {len(stdevs)} but the inputs are "
            f"{_plural(n_inputs, 'tensor')}: give one float per input tensor, or "
            "a single float."
        )
    for s in values:
        if not _is_number(s) or not math.isfinite(float(s)) or s < 0:
            raise ValueError(
                f"stdevs must be a finite float >= 0 (or a tuple of them, one per "
                f"input tensor), not {s!r}: the standard deviation of the noise "
                "added to the inputs."
            )


class LRSaliency(UsesEstimator, Saliency):
    r"""
    Captum's :class:`~captum.attr.Saliency` with gradients estimated from forward
    queries only, so the forward function needs no autograd.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        estimator (LREstimator, optional): The gradient estimator. Its
                    ``n_samples`` and ``sigma`` set the cost (forward rows) and
                    the accuracy of the map.
                    Default: ``LREstimator()``

    Examples::

        >>> net = ImageClassifier()  # forward may run under torch.no_grad
        >>> saliency = LRSaliency(net, estimator=LREstimator(n_samples=1000, seed=0))
        >>> attribution = saliency.attribute(input, target=3)
        >>> saliency.queries  # forward rows spent
    """

    def __init__(
        self, forward_func: Callable[..., Any], estimator: LREstimator | None = None
    ) -> None:
        super().__init__(forward_func)
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        abs: bool = True,
        additional_forward_args: Any = None,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``Saliency.attribute`` (same arguments and returns), after
        checking the arguments (see the module's documentation).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum: floating-point,
                        finite, not on the ``meta`` device.
            target (int, tuple, Tensor or list, optional): As in Captum.
            abs (bool, optional): As in Captum. Default: True
            additional_forward_args (Any, optional): As in Captum.

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, as in Captum.

        Examples::

            >>> saliency = LRSaliency(net, estimator=LREstimator(seed=0))
            >>> attribution = saliency.attribute(input, target=3, abs=False)
        """
        xs, _ = check_inputs(inputs)
        _check_target(target, xs[0].shape[0])
        run = Saliency.attribute.__wrapped__  # type: ignore[attr-defined]
        return run(self, inputs, target, abs, additional_forward_args)


class LRInputXGradient(UsesEstimator, InputXGradient):
    r"""
    Captum's :class:`~captum.attr.InputXGradient` with gradients estimated from
    forward queries only.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> ixg = LRInputXGradient(net)
        >>> attribution = ixg.attribute(input, target=3)
    """

    def __init__(
        self, forward_func: Callable[..., Any], estimator: LREstimator | None = None
    ) -> None:
        super().__init__(forward_func)
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``InputXGradient.attribute`` (same arguments and returns), after
        checking the arguments (see the module's documentation).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum: floating-point,
                        finite, not on the ``meta`` device.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, as in Captum.

        Examples::

            >>> ixg = LRInputXGradient(net)
            >>> attribution = ixg.attribute(input, target=3)
        """
        xs, _ = check_inputs(inputs)
        _check_target(target, xs[0].shape[0])
        run = InputXGradient.attribute.__wrapped__  # type: ignore[attr-defined]
        return run(self, inputs, target, additional_forward_args)


class LRIntegratedGradients(UsesEstimator, IntegratedGradients):
    r"""
    Captum's :class:`~captum.attr.IntegratedGradients` with the path gradients
    estimated from forward queries only. Each of the ``n_steps`` points of the
    path costs ``estimator.queries_for`` rows per example; the convergence delta
    costs two more rows per example, as in Captum.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        multiply_by_inputs (bool, optional): As in Captum: whether to multiply
                    the integrated gradients by ``inputs - baselines``.
                    Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``
        completeness (bool, optional): Opt-in correction that makes each
                    example's attributions sum to ``f(x) - f(baseline)`` at the
                    cost of the two forward rows per example that measure it. The
                    gap is spread over the coordinates in proportion to
                    ``(x - baseline)^2``, which is the least-variance (BLUE)
                    correction when the gradient estimate's error is isotropic,
                    as it is for the Gaussian and orthogonal designs. Requires
                    ``multiply_by_inputs=True``. The gap that was spread is kept in
                    ``last_completeness_gap``.
                    Default: False

    Examples::

        >>> ig = LRIntegratedGradients(net, estimator=LREstimator(seed=0))
        >>> attributions, delta = ig.attribute(
        ...     input, target=3, n_steps=32, return_convergence_delta=True
        ... )
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
        completeness: bool = False,
    ) -> None:
        if completeness and not multiply_by_inputs:
            raise ValueError(
                "completeness=True needs multiply_by_inputs=True: only then do "
                "the attributions sum to f(x) - f(baseline)."
            )
        super().__init__(forward_func, multiply_by_inputs=multiply_by_inputs)
        self._install(estimator)
        self.completeness = completeness
        self.last_completeness_gap: Tensor | None = None

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        r"""
        Captum's ``IntegratedGradients.attribute`` (same arguments and returns,
        see its documentation) after checking the arguments (see the module's
        documentation), plus the completeness correction when the class was
        built with ``completeness=True``.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum: floating-point,
                        finite, not on the ``meta`` device.
            baselines (scalar, Tensor or tuple, optional): As in Captum: per
                        input tensor a finite number, or a tensor shaped like
                        the input or like one row of it (leading 1).
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum; each step costs one gradient
                        estimate of every row. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            return_convergence_delta (bool, optional): As in Captum; after the
                        correction the delta is the float rounding left.
                        Default: False

        Returns:
            Attributions (and the convergence delta), as in Captum.

        Examples::

            >>> ig = LRIntegratedGradients(net, completeness=True)
            >>> attr, delta = ig.attribute(x, target=1, return_convergence_delta=True)
        """
        xs, names = check_inputs(inputs)
        _check_target(target, xs[0].shape[0])
        baselines = _check_path_baselines(baselines, xs, names)
        check_positive_int(
            n_steps,
            "n_steps",
            "it is the number of points on the path from the baselines to the "
            "inputs, each costing one gradient estimate (try 8 to 32).",
        )
        if method not in SUPPORTED_METHODS:
            raise ValueError(
                f"method must be one of {', '.join(SUPPORTED_METHODS)}, not {method!r}."
            )
        if method.startswith("riemann") and n_steps < 2:
            raise ValueError(
                f"method={method!r} needs n_steps >= 2, got {n_steps}; use more "
                "steps or method='gausslegendre'."
            )
        run = IntegratedGradients.attribute.__wrapped__  # type: ignore[attr-defined]
        args = (inputs, baselines, target, additional_forward_args, n_steps, method)
        # Captum lays the path out step-major: one noise stream per path point
        with self._noise_streams("steps", xs[0].shape[0], xs):
            if not self.completeness:
                return run(self, *args, internal_batch_size, return_convergence_delta)
            attributions, gap = run(self, *args, internal_batch_size, True)
        is_tuple = isinstance(attributions, tuple)
        attrs = attributions if is_tuple else (attributions,)
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        if baselines is None:
            bases: tuple[Any, ...] = tuple(0.0 for _ in xs)
        elif isinstance(baselines, tuple):
            bases = baselines
        else:
            bases = (baselines,)
        diffs = tuple((x - b).detach().to(a.dtype) for x, b, a in zip(xs, bases, attrs))
        gap = gap.to(attrs[0].dtype)
        energy = sum(d.flatten(1).square().sum(1) for d in diffs)
        share = torch.where(energy > 0, gap / energy.clamp_min(1e-30), 0.0)
        corrected = tuple(
            a - d.square() * share.view(-1, *([1] * (a.dim() - 1)))
            for a, d in zip(attrs, diffs)
        )
        self.last_completeness_gap = gap
        out = corrected if is_tuple else corrected[0]
        if return_convergence_delta:
            residual = gap - share * energy
            return out, residual
        return out


class LRGradientShap(UsesEstimator, GradientShap):
    r"""
    Captum's :class:`~captum.attr.GradientShap` with gradients estimated from
    forward queries only. Captum draws the baselines and path points with
    NumPy's and torch's global random generators; seed those for a
    reproducible map.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        multiply_by_inputs (bool, optional): As in Captum.
                    Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> gs = LRGradientShap(net)
        >>> baselines = torch.randn(20, 3, 32, 32)
        >>> attribution = gs.attribute(input, baselines, n_samples=8, target=5)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(forward_func, multiply_by_inputs=multiply_by_inputs)
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Any = None,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        r"""
        Captum's ``GradientShap.attribute`` (same arguments and returns), after
        checking the arguments (see the module's documentation). ``baselines``
        has a default only so that leaving it out says what to pass.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum: floating-point,
                        finite, not on the ``meta`` device.
            baselines (Tensor, tuple or Callable): As in Captum, required: per
                        input tensor, ``k >= 1`` finite reference rows shaped like
                        one row of the input, or a callable returning them.
            n_samples (int, optional): As in Captum; each sample costs one
                        gradient estimate of every row. Default: 5
            stdevs (float or tuple[float, ...], optional): As in Captum.
                        Default: 0.0
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            return_convergence_delta (bool, optional): As in Captum.
                        Default: False

        Returns:
            Attributions (and the convergence delta), as in Captum.

        Examples::

            >>> gs = LRGradientShap(net)
            >>> attribution = gs.attribute(x, torch.zeros(1, *x.shape[1:]), target=5)
        """
        xs, names = check_inputs(inputs)
        _check_target(target, xs[0].shape[0])
        baselines = _check_distribution(baselines, inputs, xs, names)
        check_positive_int(
            n_samples,
            "n_samples",
            "it is the number of random points per example, each costing one "
            "gradient estimate.",
        )
        _check_stdevs(stdevs, len(xs))
        run = GradientShap.attribute.__wrapped__  # type: ignore[attr-defined]
        # example-major, n_samples random baselines per example: one stream each
        with self._noise_streams("samples", n_samples, xs):
            return run(
                self,
                inputs,
                baselines,
                n_samples,
                stdevs,
                target,
                additional_forward_args,
                return_convergence_delta,
            )
