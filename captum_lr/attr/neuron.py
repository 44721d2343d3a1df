r"""Captum's neuron attributions with gradients estimated from forward passes.

Each class is the Captum class of the same name without ``LR``, with its
constructor and ``attribute`` arguments plus ``estimator=``. A neuron method
needs the gradient of one neuron (Captum's ``neuron_selector``: an index, a
tuple of indices and slices, or a callable of the layer's output) with
respect to the model's inputs: the estimator perturbs the inputs and a hook
reads the neuron's value, stopping the forward pass once the layer has run
(:class:`~captum_lr.estimation.layer_queries.NeuronForward`). The inputs must
therefore be floating-point, as for the input classes.
:class:`LRNeuronConductance` also needs the gradient of the target output
with respect to the neuron, estimated by perturbing the layer's activation as
the layer classes do (:mod:`captum_lr.attr.layer`).

The substitution is the one described in :mod:`captum_lr.attr.layer`: during
its own ``attribute`` call, each class rebinds the gradient helper its Captum
module imports by name (``_forward_layer_eval_with_neuron_grads`` for
NeuronGradient, ``construct_neuron_grad_fn`` for NeuronIntegratedGradients and
NeuronGradientShap, ``compute_layer_gradients_and_eval`` for
NeuronConductance) to the LR helpers, for calls from that context only, and
restores it afterwards.

Noise streams: path points (NeuronIntegratedGradients, NeuronConductance) and
random baselines (NeuronGradientShap) each get their own stream. In
NeuronConductance the layer gradients and the neuron's input gradients run in
separate stream contexts; with ``internal_batch_size`` and a seeded
estimator, the input gradients of different chunks of path points reuse the
same directions (their errors are then correlated across chunks, not
averaged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum._utils.typing import BaselineType, TargetType
from captum.attr import (
    NeuronConductance,
    NeuronGradient,
    NeuronGradientShap,
    NeuronIntegratedGradients,
)
from captum.log import log_usage
from torch import Tensor
from torch.nn import Module

from captum_lr.attr.inputs import check_inputs, check_positive_int
from captum_lr.attr.layer import LayerUsesEstimator, batch_size_of
from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.neuron_select import NeuronSelector


class LRNeuronGradient(LayerUsesEstimator, NeuronGradient):
    r"""
    Captum's :class:`~captum.attr.NeuronGradient` with the gradient of the
    neuron with respect to the inputs estimated from forward passes (the
    forward pass stops after the layer). One call costs one forward row per
    example for the layer's activation plus ``estimator.queries_for(inputs)``
    rows per example.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum: the layer holding the neuron.
        device_ids (list[int], optional): As in Captum.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> ng = LRNeuronGradient(net, net.linear1, estimator=LREstimator(seed=0))
        >>> attribution = ng.attribute(x, neuron_selector=(3,))
    """

    _captum_module = "captum.attr._core.neuron.neuron_gradient"
    _rerouted_names = (
        "_forward_layer_eval_with_neuron_grads",
        "apply_gradient_requirements",
    )

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
        neuron_selector: NeuronSelector,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``NeuronGradient.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum:
                        floating-point (they are perturbed), finite.
            neuron_selector (int, tuple or Callable): As in Captum: an index
                        into the layer's output (without the batch dimension),
                        a tuple of indices and slices (the selected neurons
                        are summed), or a callable of the layer's output
                        returning one value per example.
            additional_forward_args (Any, optional): As in Captum.
            attribute_to_neuron_input (bool, optional): As in Captum.
                        Default: False

        Returns:
            Gradients shaped like the inputs, as in Captum.

        Examples::

            >>> attribution = ng.attribute(x, neuron_selector=(slice(0, 4),))
        """
        check_inputs(inputs)
        run = NeuronGradient.attribute.__wrapped__  # type: ignore[attr-defined]
        with self._reroute():
            return run(
                self,
                inputs,
                neuron_selector,
                additional_forward_args,
                attribute_to_neuron_input,
            )


class LRNeuronIntegratedGradients(LayerUsesEstimator, NeuronIntegratedGradients):
    r"""
    Captum's :class:`~captum.attr.NeuronIntegratedGradients` with the
    neuron's input gradients at each path point estimated from forward passes;
    each path point has its own noise stream.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> nig = LRNeuronIntegratedGradients(net, net.linear1)
        >>> attribution = nig.attribute(x, neuron_selector=(3,), n_steps=16)
    """

    _captum_module = "captum.attr._core.neuron.neuron_integrated_gradients"
    _rerouted_names = ("construct_neuron_grad_fn",)

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
        neuron_selector: NeuronSelector,
        baselines: BaselineType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``NeuronIntegratedGradients.attribute`` (same arguments and
        returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum:
                        floating-point, finite.
            neuron_selector (int, tuple or Callable): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            attribute_to_neuron_input (bool, optional): As in Captum.
                        Default: False

        Returns:
            Attributions shaped like the inputs, as in Captum.

        Examples::

            >>> attribution = nig.attribute(x, (3,), baselines=0.0, n_steps=8)
        """
        check_inputs(inputs)
        check_positive_int(n_steps, "n_steps", "the number of path points.")
        run = NeuronIntegratedGradients.attribute.__wrapped__  # type: ignore[attr-defined]
        with (
            self._reroute(),
            self._input_streams("steps", batch_size_of(inputs), inputs),
        ):
            return run(
                self,
                inputs,
                neuron_selector,
                baselines,
                additional_forward_args,
                n_steps,
                method,
                internal_batch_size,
                attribute_to_neuron_input,
            )


class LRNeuronGradientShap(LayerUsesEstimator, NeuronGradientShap):
    r"""
    Captum's :class:`~captum.attr.NeuronGradientShap` with the neuron's input
    gradients at the random points estimated from forward passes; each of the
    ``n_samples`` points of an example has its own noise stream. Captum draws
    the baselines and points from NumPy's and torch's global generators.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> ngs = LRNeuronGradientShap(net, net.linear1)
        >>> attribution = ngs.attribute(x, (3,), torch.zeros(4, 10), n_samples=8)
    """

    _captum_module = "captum.attr._core.neuron.neuron_gradient_shap"
    _rerouted_names = ("construct_neuron_grad_fn",)

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
        neuron_selector: NeuronSelector,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float = 0.0,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``NeuronGradientShap.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum:
                        floating-point, finite.
            neuron_selector (int, tuple or Callable): As in Captum.
            baselines (Tensor, tuple or Callable): As in Captum.
            n_samples (int, optional): As in Captum. Default: 5
            stdevs (float, optional): As in Captum. Default: 0.0
            additional_forward_args (Any, optional): As in Captum.
            attribute_to_neuron_input (bool, optional): As in Captum.
                        Default: False

        Returns:
            Attributions shaped like the inputs, as in Captum.

        Examples::

            >>> attribution = ngs.attribute(x, (3,), baselines, n_samples=8)
        """
        check_inputs(inputs)
        check_positive_int(
            n_samples, "n_samples", "the number of random points per example."
        )
        run = NeuronGradientShap.attribute.__wrapped__  # type: ignore[attr-defined]
        with self._reroute(), self._input_streams("samples", n_samples, inputs):
            return run(
                self,
                inputs,
                neuron_selector,
                baselines,
                n_samples,
                stdevs,
                additional_forward_args,
                attribute_to_neuron_input,
            )


class LRNeuronConductance(LayerUsesEstimator, NeuronConductance):
    r"""
    Captum's :class:`~captum.attr.NeuronConductance` without autograd: at each
    path point, the gradient of the target output with respect to the layer
    is estimated by perturbing the layer's activation, and the gradient of
    the neuron with respect to the inputs by perturbing the inputs (the
    forward pass stops after the layer). Both have a noise stream per path
    point.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it (no autograd needed).
        layer (torch.nn.Module): As in Captum.
        device_ids (list[int], optional): As in Captum.
        multiply_by_inputs (bool, optional): As in Captum. Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> nc = LRNeuronConductance(net, net.sigmoid1)
        >>> attribution = nc.attribute(x, neuron_selector=2, target=1)
    """

    _captum_module = "captum.attr._core.neuron.neuron_conductance"

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
        neuron_selector: NeuronSelector,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "riemann_trapezoid",
        internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""
        Captum's ``NeuronConductance.attribute`` (same arguments and returns).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum:
                        floating-point, finite.
            neuron_selector (int, tuple or Callable): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum; each step costs a layer
                        gradient and an input gradient estimate per example.
                        Default: 50
            method (str, optional): As in Captum. Default: "riemann_trapezoid"
            internal_batch_size (int, optional): As in Captum. Default: None
            attribute_to_neuron_input (bool, optional): As in Captum.
                        Default: False
            grad_kwargs (dict, optional): Ignored (no autograd).

        Returns:
            Attributions shaped like the inputs, as in Captum.

        Examples::

            >>> attribution = nc.attribute(x, 2, target=1, n_steps=16)
        """
        check_inputs(inputs)
        check_positive_int(n_steps, "n_steps", "the number of path points.")
        run = NeuronConductance.attribute.__wrapped__  # type: ignore[attr-defined]
        batch = batch_size_of(inputs)
        layer_streams = self._layer_streams(
            "steps", batch, inputs, additional_forward_args, attribute_to_neuron_input
        )

        def input_streams() -> Any:
            return self._input_streams("steps", batch, inputs)

        with self._reroute(neuron_streams=input_streams), layer_streams:
            return run(
                self,
                inputs,
                neuron_selector,
                baselines,
                target,
                additional_forward_args,
                n_steps,
                method,
                internal_batch_size,
                attribute_to_neuron_input,
                grad_kwargs,
            )
