r"""Captum's layer attributions with gradients estimated from forward passes.

Each class is the Captum class of the same name without ``LR``, with its
constructor and ``attribute`` arguments plus ``estimator=``; the gradients
with respect to the layer are estimated by perturbing the layer's activation
through a forward hook (:mod:`captum_lr.estimation.layer_queries`), so the
model needs no autograd: it may run under ``torch.no_grad``, hold
non-differentiable operations after the layer, or be quantized, anywhere
forward hooks run. The model is only ever called with its real inputs
(expanded to the estimator's rows); the layer's weights are never touched.

How Captum's code is reused (the least invasive substitution we found).
Captum's layer and neuron classes do not go through ``self.gradient_func``:
each of their modules imports its gradient helper by name from
``captum._utils.gradient`` (``compute_layer_gradients_and_eval``,
``_forward_layer_eval_with_neuron_grads``, ``construct_neuron_grad_fn``) and
calls it inside ``attribute`` and the private ``_attribute``. Subclassing
cannot reach those calls, and copying each ``attribute`` (30 to 150 lines
each, ten classes) would drift from Captum. So during its own ``attribute``
call an LR class rebinds that name, in that one Captum module only, to a
dispatcher (:func:`~captum_lr.attr.rerouting.rerouted`):

- the dispatcher sends the call to the LR helper
  (:class:`~captum_lr.estimation.layer_queries.LayerGradients`) only when
  the calling context is inside an LR ``attribute`` call (a
  :class:`contextvars.ContextVar`, so per thread and per task); every other
  caller, such as a plain Captum class in another thread at the same moment,
  gets Captum's own function;
- installing and restoring are counted under a lock (:func:`acquire`,
  :func:`release`), so concurrent and nested LR calls share one dispatcher,
  and the last one out restores Captum's function, in a ``finally`` block
  (also after an exception). A name that someone else rebound in the meantime
  is left to them. :func:`~captum_lr.patch_captum` uses the same registry and
  dispatchers, so LR calls and switches nest and interleave in any order.

``LayerIntegratedGradients`` needs no rebinding: it builds the gradient
function of its inner ``IntegratedGradients`` in a method,
``_make_gradient_func``, which :class:`LRLayerIntegratedGradients` overrides.
Everything else (baselines, paths, quadrature, ``internal_batch_size``,
convergence deltas, targets, tuple layers, lists of layers, output formats)
is Captum's own code.

Noise streams: Captum lays the path points of LayerConductance,
InternalInfluence and LayerIntegratedGradients out step-major, and
LayerGradientShap's random baselines example-major; the classes give each
path point (or baseline) its own noise stream, as the input classes do, and
with ``sigma="auto"`` scale the noise by the layer's activation at the
inputs, found by one more forward row per example.

``device_ids``: accepted and passed to Captum as in Captum; the activations of
a ``DataParallel`` forward are gathered in ``device_ids`` order and the
estimator's rows scattered the same way (see
:mod:`~captum_lr.estimation.layer_queries`). Tested on one device.

Captum's gradient layer methods have no ``layer_baselines`` argument (only the
perturbation method ``LayerFeatureAblation`` has); ``baselines`` of the path
methods are inputs, as in Captum. ``grad_kwargs`` (arguments of
``torch.autograd.grad``) is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from captum._utils.common import (
    _format_tensor_into_tuples,
)
from captum._utils.typing import BaselineType, TargetType
from captum.attr import (
    InternalInfluence,
    LayerConductance,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
)
from captum.log import log_usage
from torch import Tensor
from torch.nn import Module

from captum_lr.attr.inputs import UsesEstimator, check_positive_int
from captum_lr.attr.rerouting import (
    Engine,
    rerouted,
)
from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.layer_queries import (
    LayerGradients,
    activation_at_inputs,
    layers_of,
)


class LayerUsesEstimator(UsesEstimator):
    """The mixin of the LR layer and neuron classes (here and in
    :mod:`captum_lr.attr.neuron`): reroutes its Captum module's gradient
    helper to the estimator during ``attribute``."""

    _captum_module: str
    _rerouted_names: tuple[str, ...] = ("compute_layer_gradients_and_eval",)
    layer: Any
    device_ids: Any

    def _reroute(
        self,
        neuron_streams: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> AbstractContextManager[None]:
        engine = Engine(self.estimator, neuron_streams)
        return rerouted(engine, self._captum_module, self._rerouted_names)

    def _auto_sigma(self) -> bool:
        return getattr(self.estimator, "sigma", None) == "auto"

    def _layer_streams(
        self,
        layout: str,
        size: int,
        inputs: Any,
        additional_forward_args: Any,
        attribute_to_layer_input: bool,
    ) -> AbstractContextManager[Any]:
        """The estimator's noise streams for Captum's row layout, with the
        layer's activation at the inputs as the noise-scale reference (one
        forward row per example) when ``sigma="auto"``."""
        if getattr(self.estimator, "noise_streams", None) is None:
            return nullcontext()
        reference = None
        if self._auto_sigma():
            reference = activation_at_inputs(
                self.forward_func,
                inputs,
                self.layer,
                additional_forward_args,
                self.device_ids,
                attribute_to_layer_input,
            )
        return self._noise_streams(layout, size, reference)

    def _input_streams(
        self, layout: str, size: int, inputs: Any
    ) -> AbstractContextManager[Any]:
        """The estimator's noise streams for rows of perturbed inputs."""
        reference = _format_tensor_into_tuples(inputs) if self._auto_sigma() else None
        return self._noise_streams(layout, size, reference)


def batch_size_of(inputs: Any) -> int:
    r"""
    The number of examples (rows of the first tensor) of ``inputs``.

    Args:

        inputs (Tensor or tuple[Tensor, ...]): An attribution's inputs.

    Returns:
        *int*
    """
    return int(_format_tensor_into_tuples(inputs)[0].shape[0])


# ---------------------------------------------------------------- classes


class LRLayerGradientXActivation(LayerUsesEstimator, LayerGradientXActivation):
    r"""
    Captum's :class:`~captum.attr.LayerGradientXActivation` with the layer
    gradients estimated from forward passes that perturb the layer's
    activation. One call costs one forward row per example for the activation
    plus ``estimator.queries_for(activation)`` rows per example.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module or list[torch.nn.Module]): As in Captum: the
                    layer (or layers) whose output or input is attributed.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        memory_efficient (bool, optional): As in Captum: results on the CPU.
                    Default: False
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> lga = LRLayerGradientXActivation(net, net.conv1,
        ...                                  estimator=LREstimator(seed=0))
        >>> attribution = lga.attribute(x, target=3)
        >>> lga.queries  # forward rows spent
    """

    _captum_module = "captum.attr._core.layer.layer_gradient_x_activation"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module | list[Module],
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
        memory_efficient: bool = False,
        estimator: LREstimator | None = None,
    ) -> None:
        # Captum 0.8 has no memory_efficient: pass it only when asked for
        extra = {"memory_efficient": True} if memory_efficient else {}
        super().__init__(
            forward_func,
            layer,
            device_ids=device_ids,
            multiply_by_inputs=multiply_by_inputs,
            **extra,
        )
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Captum's ``LayerGradientXActivation.attribute`` (same arguments and
        returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum (any dtype the
                        model takes, e.g. token ids).
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions shaped like the layer's output (or input), as in
            Captum; a list for a list of layers.

        Examples::

            >>> attribution = lga.attribute(x, target=3)
        """
        run = LayerGradientXActivation.attribute.__wrapped__  # type: ignore[attr-defined]
        with self._reroute():
            return run(
                self,
                inputs,
                target,
                additional_forward_args,
                attribute_to_layer_input,
                grad_kwargs,
            )


class LRLayerGradCam(LayerUsesEstimator, LayerGradCam):
    r"""
    Captum's :class:`~captum.attr.LayerGradCam` with the layer gradients
    estimated from forward passes that perturb the layer's activation.

    GradCam only uses each channel's spatial mean gradient. An estimator with
    one group per channel estimates exactly that from ``C`` coordinates (an
    exact sweep with ``n_samples >= C``) instead of ``C * H * W``:
    ``LREstimator(prior=GroupPrior(torch.arange(C).view(C, 1, 1)))``.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> channels = GroupPrior(torch.arange(16).view(16, 1, 1))
        >>> cam = LRLayerGradCam(net, net.conv2,
        ...                      estimator=LREstimator(prior=channels, seed=0))
        >>> attribution = cam.attribute(x, target=3)
    """

    _captum_module = "captum.attr._core.layer.grad_cam"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module,
        device_ids: list[int] | None = None,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(forward_func, layer, device_ids=device_ids)
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Captum's ``LayerGradCam.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False
            relu_attributions (bool, optional): As in Captum. Default: False
            attr_dim_summation (bool, optional): As in Captum. Default: True
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions, as in Captum.

        Examples::

            >>> attribution = cam.attribute(x, target=3, relu_attributions=True)
        """
        run = LayerGradCam.attribute.__wrapped__  # type: ignore[attr-defined]
        with self._reroute():
            return run(
                self,
                inputs,
                target,
                additional_forward_args,
                attribute_to_layer_input,
                relu_attributions,
                attr_dim_summation,
                grad_kwargs,
            )


class LRInternalInfluence(LayerUsesEstimator, InternalInfluence):
    r"""
    Captum's :class:`~captum.attr.InternalInfluence` with the layer gradients
    at each path point estimated from forward passes that perturb the layer's
    activation; each path point has its own noise stream.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> ii = LRInternalInfluence(net, net.relu1, estimator=LREstimator(seed=0))
        >>> attribution = ii.attribute(x, target=1, n_steps=16)
    """

    _captum_module = "captum.attr._core.layer.internal_influence"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module,
        device_ids: list[int] | None = None,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(forward_func, layer, device_ids=device_ids)
        self._install(estimator)

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
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Captum's ``InternalInfluence.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum; each step costs one layer
                        gradient estimate per example. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions, as in Captum.

        Examples::

            >>> attribution = ii.attribute(x, baselines=0.0, target=1, n_steps=8)
        """
        check_positive_int(n_steps, "n_steps", "the number of path points.")
        run = InternalInfluence.attribute.__wrapped__  # type: ignore[attr-defined]
        streams = self._layer_streams(
            "steps",
            batch_size_of(inputs),
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
        )
        with self._reroute(), streams:
            return run(
                self,
                inputs,
                baselines,
                target,
                additional_forward_args,
                n_steps,
                method,
                internal_batch_size,
                attribute_to_layer_input,
                grad_kwargs,
            )


class LRLayerConductance(LayerUsesEstimator, LayerConductance):
    r"""
    Captum's :class:`~captum.attr.LayerConductance` with the layer gradients
    at each of the ``n_steps + 1`` path points estimated from forward passes
    that perturb the layer's activation; each path point has its own noise
    stream. The convergence delta costs two forward rows per example, as in
    Captum.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> cond = LRLayerConductance(net, net.sigmoid1)
        >>> attribution, delta = cond.attribute(
        ...     x, target=1, n_steps=16, return_convergence_delta=True
        ... )
    """

    _captum_module = "captum.attr._core.layer.layer_conductance"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module,
        device_ids: list[int] | None = None,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(forward_func, layer, device_ids=device_ids)
        self._install(estimator)

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
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Captum's ``LayerConductance.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum; ``n_steps + 1`` layer
                        gradient estimates per example. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            return_convergence_delta (bool, optional): As in Captum.
                        Default: False
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions (and the convergence delta), as in Captum.

        Examples::

            >>> attribution = cond.attribute(x, target=1, n_steps=16)
        """
        check_positive_int(n_steps, "n_steps", "the number of path steps.")
        run = LayerConductance.attribute.__wrapped__  # type: ignore[attr-defined]
        streams = self._layer_streams(
            "steps",
            batch_size_of(inputs),
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
        )
        with self._reroute(), streams:
            return run(
                self,
                inputs,
                baselines,
                target,
                additional_forward_args,
                n_steps,
                method,
                internal_batch_size,
                return_convergence_delta,
                attribute_to_layer_input,
                grad_kwargs,
            )


class LRLayerIntegratedGradients(LayerUsesEstimator, LayerIntegratedGradients):
    r"""
    Captum's :class:`~captum.attr.LayerIntegratedGradients` with the gradients
    along the path in the layer's activation space estimated from forward
    passes: the model runs on its real inputs while a hook puts each path
    point (perturbed by the estimator) in place of the layer's output (or
    input), as Captum's own hook does. Each path point has its own noise
    stream. Works with a list of layers and with embedding layers fed token
    ids.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module or list[torch.nn.Module]): As in Captum.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> lig = LRLayerIntegratedGradients(model, model.embedding)
        >>> attribution = lig.attribute(token_ids, baselines=pad_ids, target=1)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module | list[Module],
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(
            forward_func,
            layer,
            device_ids=device_ids,
            multiply_by_inputs=multiply_by_inputs,
        )
        self._install(estimator)

    def _make_gradient_func(  # type: ignore[override]
        self,
        num_outputs_cumsum: Tensor,
        attribute_to_layer_input: bool,
        grad_kwargs: dict[str, Any] | None,
    ) -> Callable[..., tuple[Tensor, ...]]:
        parts = (num_outputs_cumsum[1:] - num_outputs_cumsum[:-1]).tolist()
        return LayerGradients(self.estimator).layer_path_gradient_func(
            self.forward_func,
            layers_of(self.layer),
            [int(p) for p in parts],
            attribute_to_layer_input,
            self.device_ids,
        )

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
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Captum's ``LayerIntegratedGradients.attribute`` (same arguments and
        returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum (any dtype the
                        model takes, e.g. token ids).
            baselines (scalar, Tensor or tuple, optional): As in Captum
                        (inputs, e.g. padding token ids).
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum; each step costs one layer
                        gradient estimate per example. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            return_convergence_delta (bool, optional): As in Captum.
                        Default: False
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions (and the convergence delta), as in Captum; a list
            for a list of layers.

        Examples::

            >>> attribution, delta = lig.attribute(
            ...     ids, baselines=pad_ids, target=1, return_convergence_delta=True
            ... )
        """
        check_positive_int(n_steps, "n_steps", "the number of path points.")
        run = LayerIntegratedGradients.attribute.__wrapped__  # type: ignore[attr-defined]
        streams = self._layer_streams(
            "steps",
            batch_size_of(inputs),
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
        )
        with streams:
            return run(
                self,
                inputs,
                baselines,
                target,
                additional_forward_args,
                n_steps,
                method,
                internal_batch_size,
                return_convergence_delta,
                attribute_to_layer_input,
                grad_kwargs,
            )


class LRLayerGradientShap(LayerUsesEstimator, LayerGradientShap):
    r"""
    Captum's :class:`~captum.attr.LayerGradientShap` with the layer gradients
    at the random points between inputs and baselines estimated from forward
    passes that perturb the layer's activation; each of the ``n_samples``
    random points of an example has its own noise stream. Captum draws the
    baselines and points from NumPy's and torch's global generators.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> lgs = LRLayerGradientShap(net, net.linear1)
        >>> attribution = lgs.attribute(x, torch.zeros(1, 10), target=0)
    """

    _captum_module = "captum.attr._core.layer.layer_gradient_shap"

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(
            forward_func,
            layer,
            device_ids=device_ids,
            multiply_by_inputs=multiply_by_inputs,
        )
        self._install(estimator)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
    ) -> Any:
        r"""
        Captum's ``LayerGradientShap.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            baselines (Tensor, tuple or Callable): As in Captum.
            n_samples (int, optional): As in Captum; each sample costs one
                        layer gradient estimate per example. Default: 5
            stdevs (float or tuple[float, ...], optional): As in Captum.
                        Default: 0.0
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            return_convergence_delta (bool, optional): As in Captum.
                        Default: False
            attribute_to_layer_input (bool, optional): As in Captum.
                        Default: False

        Returns:
            Attributions (and the convergence delta), as in Captum.

        Examples::

            >>> attribution = lgs.attribute(x, baselines, n_samples=8, target=0)
        """
        check_positive_int(
            n_samples, "n_samples", "the number of random points per example."
        )
        run = LayerGradientShap.attribute.__wrapped__  # type: ignore[attr-defined]
        streams = self._layer_streams(
            "samples",
            n_samples,
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
        )
        with self._reroute(), streams:
            return run(
                self,
                inputs,
                baselines,
                n_samples,
                stdevs,
                target,
                additional_forward_args,
                return_convergence_delta,
                attribute_to_layer_input,
            )
