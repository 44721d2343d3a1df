r"""Captum's gradient attributions with the likelihood-ratio estimator as engine.

Each class is the Captum class of the same name without ``LR``; only the
gradient engine differs. ``attribute`` and every argument are inherited, so
``internal_batch_size``, ``return_convergence_delta``, targets, tuple inputs,
``additional_forward_args`` and :class:`captum.attr.NoiseTunnel` behave as in
Captum.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

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
from captum.log import log_usage
from torch import Tensor

from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.queries import CountingForward


class _UsesEstimator:
    """Installs an :class:`LREstimator` as the instance's ``gradient_func``.

    Captum's Saliency and InputXGradient set ``requires_grad`` on the inputs and
    warn when they did not have it; the estimator needs no gradients, so the LR
    classes silence that one warning.
    """

    estimator: LREstimator

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
        counter = getattr(estimator, "_count", None)
        if counter is not None:
            self.forward_func = CountingForward(self.forward_func, counter)

    @property
    def queries(self) -> int:
        r"""Forward rows spent so far: the estimator's queries and the rows Captum
        sends directly (e.g. for the convergence delta)."""
        return self.estimator.queries


_REQUIRES_GRAD = r"Input Tensor \d+ did not already require gradients"


def _without_requires_grad_warning(method: Callable[..., Any]) -> Callable[..., Any]:
    """Captum's ``attribute`` minus its requires-grad warning (``__wrapped__`` is
    kept, which NoiseTunnel calls)."""

    @functools.wraps(method)
    def attribute(self: Any, *args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_REQUIRES_GRAD)
            return method(self, *args, **kwargs)

    return attribute


class LRSaliency(_UsesEstimator, Saliency):
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

    attribute = _without_requires_grad_warning(Saliency.attribute)


class LRInputXGradient(_UsesEstimator, InputXGradient):
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

    attribute = _without_requires_grad_warning(InputXGradient.attribute)


class LRIntegratedGradients(_UsesEstimator, IntegratedGradients):
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
        see its documentation), plus the completeness correction when the class
        was built with ``completeness=True``.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum. Default: 50
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
        run = IntegratedGradients.attribute.__wrapped__  # type: ignore[attr-defined]
        args = (inputs, baselines, target, additional_forward_args, n_steps, method)
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


class LRGradientShap(_UsesEstimator, GradientShap):
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
