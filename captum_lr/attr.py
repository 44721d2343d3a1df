r"""Captum's gradient attributions with the likelihood-ratio estimator as engine.

Each class is the Captum class of the same name without ``LR``; only the
gradient engine differs. ``attribute`` and every argument are inherited, so
``internal_batch_size``, ``return_convergence_delta``, targets, tuple inputs,
``additional_forward_args`` and :class:`captum.attr.NoiseTunnel` behave as in
Captum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum.attr import GradientShap, InputXGradient, IntegratedGradients, Saliency

from captum_lr.estimator import LREstimator


class _UsesEstimator:
    """Installs an :class:`LREstimator` as the instance's ``gradient_func``."""

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

    @property
    def queries(self) -> int:
        r"""Forward rows spent so far by this attribution's estimator."""
        return self.estimator.queries


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


class LRIntegratedGradients(_UsesEstimator, IntegratedGradients):
    r"""
    Captum's :class:`~captum.attr.IntegratedGradients` with the path gradients
    estimated from forward queries only. Each of the ``n_steps`` points of the
    path costs ``estimator.queries_for`` rows; the convergence delta costs two
    forward passes, as in Captum.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        multiply_by_inputs (bool, optional): As in Captum: whether to multiply
                    the integrated gradients by ``inputs - baselines``.
                    Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

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
    ) -> None:
        super().__init__(forward_func, multiply_by_inputs=multiply_by_inputs)
        self._install(estimator)


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
