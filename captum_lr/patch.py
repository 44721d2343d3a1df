r"""One switch for unchanged Captum code: every gradient Captum computes comes
from the likelihood-ratio estimator.

``patch_captum(estimator=None)`` works as a context manager and as a plain
call that returns a handle whose ``undo()`` restores Captum exactly. While it
is active (process-wide; switches nest, the innermost one's estimator
answers):

- every :class:`~captum.attr._utils.attribution.GradientAttribution` built
  while it is active (Saliency, InputXGradient, IntegratedGradients,
  GradientShap, NoiseTunnel around them, ...) gets as ``gradient_func`` a
  dispatcher that calls the estimator while a switch is active and Captum's
  ``compute_gradients`` otherwise (Captum binds ``gradient_func`` when an
  attribution is built: one built before the switch keeps autograd);
- the layer and neuron classes' gradient helpers
  (``compute_layer_gradients_and_eval``, ``_forward_layer_eval_with_neuron_grads``,
  ``construct_neuron_grad_fn`` in the modules that import them, and
  ``LayerIntegratedGradients._make_gradient_func``) are answered by the LR
  helpers of :mod:`captum_lr.estimation.layer_queries`: the layer's
  activation is perturbed through a forward hook, a neuron's input gradient
  by perturbing the inputs;
- ``captum.robust.FGSM.perturb`` (and so PGD, ``AttackComparator`` and
  ``MinParamPerturbation`` when they use them) takes the gradient of the
  per-example loss from the estimator;
- the path and sampling methods (IntegratedGradients, GradientShap, their
  layer and neuron forms, LayerConductance, InternalInfluence) give each path
  point or random baseline its own noise stream, as the LR classes do;
- methods that rewrite the backward pass (DeepLift, DeepLiftShap,
  GuidedBackprop, Deconvolution, GuidedGradCam, LRP and their layer and
  neuron forms) raise :class:`NeedsAutogradError`, which names the method,
  says what it rewrites, and names the nearest forward-only method.

Captum's perturbation methods (Occlusion, FeatureAblation, Lime, KernelShap,
ShapleyValueSampling, FeaturePermutation) need no gradient and are untouched.
Importing this module changes nothing.

Mechanics: the names are rebound through the registry of
:mod:`captum_lr.attr.layer` (the one the LR classes use during their own
calls), which counts users under a lock and puts Captum's own objects back
when the last one leaves, so switches and LR calls can nest and interleave in
any order, and an exception inside a ``with`` block restores Captum too.

Forward rows: ``estimator.queries`` counts the estimator's rows and the
layer activations the layer helpers evaluate; rows Captum sends itself
(convergence deltas, baselines' activations) are not counted.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from captum._utils.common import (
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    _select_targets,
)

from captum_lr.attr.rerouting import (
    Engine,
    Target,
    acquire,
    current_engine,
    helper_targets,
    pop_switch,
    push_switch,
    release,
    switch_lock,
)
from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.layer_queries import activation_at_inputs, layers_of


class NeedsAutogradError(RuntimeError):
    r"""A Captum method that rewrites the backward pass was called while
    :func:`patch_captum` is active."""


_DEEPLIFT = (
    "propagates multipliers (output differences over input differences "
    "against the baseline) through backward hooks on its nonlinear modules"
)
_RELU = (
    "overrides the gradient of every ReLU in the backward pass (keeping only "
    "its positive part)"
)
_LRP = "propagates relevance backwards with per-layer rules set as backward hooks"

# Captum class -> (what it rewrites, nearest forward-only method)
BACKWARD_REWRITING: dict[str, tuple[str, str]] = {
    "DeepLift": (_DEEPLIFT, "IntegratedGradients"),
    "DeepLiftShap": (_DEEPLIFT, "GradientShap"),
    "GuidedBackprop": (_RELU, "Saliency (abs=False)"),
    "Deconvolution": (_RELU, "Saliency (abs=False)"),
    "GuidedGradCam": (_RELU, "LayerGradCam"),
    "LRP": (_LRP, "InputXGradient"),
    "LayerDeepLift": (_DEEPLIFT, "LayerIntegratedGradients"),
    "LayerDeepLiftShap": (_DEEPLIFT, "LayerGradientShap"),
    "LayerLRP": (_LRP, "LayerGradientXActivation"),
    "NeuronDeepLift": (_DEEPLIFT, "NeuronIntegratedGradients"),
    "NeuronDeepLiftShap": (_DEEPLIFT, "NeuronGradientShap"),
    "NeuronGuidedBackprop": (_RELU, "NeuronGradient"),
    "NeuronDeconvolution": (_RELU, "NeuronGradient"),
}
r"""The methods that raise :class:`NeedsAutogradError` under the switch."""

# Captum class -> (row layout, its argument giving the group size or None for
# the batch, whether the estimator's rows are perturbed inputs)
_STREAMS: dict[str, tuple[str, str | None, bool]] = {
    "IntegratedGradients": ("steps", None, True),
    "GradientShap": ("samples", "n_samples", True),
    "NeuronIntegratedGradients": ("steps", None, True),
    "NeuronGradientShap": ("samples", "n_samples", True),
    "LayerIntegratedGradients": ("steps", None, False),
    "LayerConductance": ("steps", None, False),
    "InternalInfluence": ("steps", None, False),
    "LayerGradientShap": ("samples", "n_samples", False),
    "NeuronConductance": ("steps", None, False),
}

_HELPERS: dict[str, tuple[str, ...]] = {
    "captum.attr._utils.attribution": ("compute_gradients",),
    "captum.attr._core.saliency": ("apply_gradient_requirements",),
    "captum.attr._core.input_x_gradient": ("apply_gradient_requirements",),
    "captum.attr._core.layer.layer_conductance": ("compute_layer_gradients_and_eval",),
    "captum.attr._core.layer.internal_influence": ("compute_layer_gradients_and_eval",),
    "captum.attr._core.layer.layer_gradient_x_activation": (
        "compute_layer_gradients_and_eval",
    ),
    "captum.attr._core.layer.grad_cam": ("compute_layer_gradients_and_eval",),
    "captum.attr._core.layer.layer_gradient_shap": (
        "compute_layer_gradients_and_eval",
    ),
    "captum.attr._core.neuron.neuron_conductance": (
        "compute_layer_gradients_and_eval",
    ),
    "captum.attr._core.neuron.neuron_gradient": (
        "_forward_layer_eval_with_neuron_grads",
        "apply_gradient_requirements",
    ),
    "captum.attr._core.neuron.neuron_integrated_gradients": (
        "construct_neuron_grad_fn",
    ),
    "captum.attr._core.neuron.neuron_gradient_shap": ("construct_neuron_grad_fn",),
}


def needs_autograd_message(name: str) -> str:
    r"""
    The error a backward-rewriting Captum method raises under the switch.

    Args:

        name (str): The Captum class, e.g. ``"DeepLift"``.

    Returns:
        *str*
    """
    why, nearest = BACKWARD_REWRITING[name]
    base = nearest.split(" ")[0]
    return (
        f"{name} cannot run under captum_lr.patch_captum(): it {why}, which "
        "only exists in autograd's backward pass, and the likelihood-ratio "
        "estimator has no backward pass to rewrite, only forward queries. "
        f"The nearest forward-only method is {nearest} (Captum's under the "
        f"switch, or captum_lr's LR{base} where it exists); or call {name} "
        "outside the switch on a model with autograd."
    )


# ------------------------------------------------------------ replacements


def _raising(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``attribute`` that raises under the switch (its ``__wrapped__`` too)."""

    def guard(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def attribute(*args: Any, **kwargs: Any) -> Any:
            if current_engine() is not None:
                raise NeedsAutogradError(needs_autograd_message(name))
            return function(*args, **kwargs)

        return attribute

    replacement = guard(original)
    inner = getattr(original, "__wrapped__", None)
    replacement.__wrapped__ = guard(inner) if inner is not None else original  # type: ignore[attr-defined]
    return replacement


def _batch_of(inputs: Any) -> int:
    return int(_format_tensor_into_tuples(inputs)[0].shape[0])


def _float_reference(inputs: Any) -> tuple[torch.Tensor, ...] | None:
    """The inputs as a noise-scale reference, if they are float tensors."""
    reference = _format_tensor_into_tuples(inputs)
    if all(
        isinstance(t, torch.Tensor) and t.dtype.is_floating_point for t in reference
    ):
        return reference
    return None


def _layer_reference(
    method: Any, engine: Any, arguments: dict[str, Any]
) -> tuple[torch.Tensor, ...] | None:
    """The layer's activation at the inputs (one forward row per example,
    counted with the estimator's queries), the noise-scale reference of a
    layer method's rows with ``sigma="auto"``, as the LR layer classes use:
    without it each path point's noise would follow its own activation,
    which near a zero baseline is too small for float32 outputs."""
    if getattr(engine.estimator, "sigma", None) != "auto":
        return None
    to_input = arguments.get(
        "attribute_to_layer_input", arguments.get("attribute_to_neuron_input", False)
    )
    return activation_at_inputs(
        engine.counted(method.forward_func),
        arguments["inputs"],
        method.layer,
        arguments.get("additional_forward_args"),
        getattr(method, "device_ids", None),
        bool(to_input),
    )


def _with_streams(
    layout: str, size_arg: str | None, on_inputs: bool, original: Callable[..., Any]
) -> Callable[..., Any]:
    """``attribute`` that runs in the estimator's noise streams for Captum's
    row layout under the switch (``__wrapped__`` stays Captum's)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def attribute(self: Any, *args: Any, **kwargs: Any) -> Any:
        engine = current_engine()
        streams = getattr(getattr(engine, "estimator", None), "noise_streams", None)
        if streams is None:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        inputs = bound.arguments["inputs"]
        size = _batch_of(inputs) if size_arg is None else bound.arguments.get(size_arg)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            return original(self, *args, **kwargs)  # Captum says what is wrong
        inputs_ref = _float_reference(inputs)
        if on_inputs:
            with streams(layout, size, inputs_ref):
                return original(self, *args, **kwargs)
        reference = _layer_reference(self, engine, bound.arguments)
        neuron = engine.neuron_streams  # the neuron-to-input gradients' rows
        engine.neuron_streams = lambda: streams(layout, size, inputs_ref)
        try:
            with streams(layout, size, reference):
                return original(self, *args, **kwargs)
        finally:
            engine.neuron_streams = neuron

    inner = getattr(original, "__wrapped__", None)
    if inner is not None:
        attribute.__wrapped__ = inner  # type: ignore[attr-defined]
    return attribute


def _path_gradient_func(original: Callable[..., Any]) -> Callable[..., Any]:
    """``LayerIntegratedGradients._make_gradient_func`` under the switch."""

    @functools.wraps(original)
    def _make_gradient_func(
        self: Any,
        num_outputs_cumsum: torch.Tensor,
        attribute_to_layer_input: bool,
        grad_kwargs: dict[str, Any] | None,
    ) -> Callable[..., Any]:
        engine = current_engine()
        if engine is None:
            return original(
                self, num_outputs_cumsum, attribute_to_layer_input, grad_kwargs
            )
        parts = (num_outputs_cumsum[1:] - num_outputs_cumsum[:-1]).tolist()
        return engine.layer_path_gradient_func(
            self.forward_func,
            layers_of(self.layer),
            [int(p) for p in parts],
            attribute_to_layer_input,
            self.device_ids,
        )

    return _make_gradient_func


def _minus_log_chain(
    output_of_rows: Callable[..., torch.Tensor],
    xs: tuple[torch.Tensor, ...],
    args: tuple[Any, ...],
    grads: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, ...]:
    """FGSM's default loss ``-log(y)`` by the chain rule, as autograd applies
    it: ``-grad(y) / y``, with ``grad(y)`` from the estimator. Estimating the
    loss itself would difference ``log`` of outputs that may lie outside its
    domain (Captum's tests attack models whose outputs go negative; autograd
    still returns ``-grad(y) / y`` there), and adds the log's curvature to
    the estimate. Costs one forward row per example, for ``y``."""
    with torch.no_grad():
        y = output_of_rows(*xs, *args)
    if y.dim() != 1 or y.shape[0] != xs[0].shape[0]:
        raise ValueError(
            "FGSM without a loss_func needs one output per example once the "
            f"target is applied; the model gave shape {tuple(y.shape)}. Pass a "
            "target that selects one output per example, or a loss_func."
        )
    scale = -1.0 / y
    return tuple(
        g * scale.to(g.dtype).reshape(-1, *([1] * (g.dim() - 1))) for g in grads
    )


def _fgsm_perturb(original: Callable[..., Any]) -> Callable[..., Any]:
    """``FGSM.perturb`` with the loss gradient from the estimator."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def perturb(self: Any, *args: Any, **kwargs: Any) -> Any:
        engine = current_engine()
        if engine is None:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        inputs, target = call["inputs"], call["target"]
        is_tuple = _is_tuple(inputs)
        xs = _format_tensor_into_tuples(inputs)
        mask = call.get("mask")
        masks = _format_tensor_into_tuples(mask) if mask is not None else (1,) * len(xs)
        extra = _format_additional_forward_args(call.get("additional_forward_args"))
        n = len(xs)

        def loss_of_rows(*rows: Any) -> torch.Tensor:
            # rows: perturbed inputs, then the target and the extra
            # arguments, expanded by the estimator to the same rows
            outputs = self.forward_func(*rows[:n], *rows[n + 1 :])
            if self.loss_func is not None:
                return self.loss_func(outputs, rows[n])
            return _select_targets(outputs, rows[n])

        args = (target, *(extra or ()))
        grads = engine.estimator(loss_of_rows, xs, None, args)
        if self.loss_func is None:
            grads = _minus_log_chain(loss_of_rows, xs, args, grads)
        perturbed = self._perturb(xs, grads, call["epsilon"], call["targeted"], masks)
        perturbed = tuple(self.bound(p) for p in perturbed)
        return _format_output(is_tuple, perturbed)

    return perturb


# ------------------------------------------------------------ the switch


@functools.lru_cache(maxsize=1)
def _targets() -> tuple[Target, ...]:
    """Everything the switch rebinds (imports Captum's modules; installs
    nothing)."""
    import captum.attr as attr  # noqa: PLC0415
    from captum.robust import FGSM  # noqa: PLC0415

    targets: list[Target] = []
    for module_name, names in _HELPERS.items():
        targets += helper_targets(module_name, names)
    targets.append(
        (attr.LayerIntegratedGradients, "_make_gradient_func", _path_gradient_func)
    )
    targets.append((FGSM, "perturb", _fgsm_perturb))
    for name, (layout, size_arg, on_inputs) in _STREAMS.items():
        make = functools.partial(_with_streams, layout, size_arg, on_inputs)
        targets.append((getattr(attr, name), "attribute", make))
    for name in BACKWARD_REWRITING:
        make = functools.partial(_raising, name)
        targets.append((getattr(attr, name), "attribute", make))
    return tuple(targets)


class CaptumPatch:
    r"""
    An active :func:`patch_captum` switch: a context manager, and a handle
    whose :meth:`undo` ends it.

    Args:

        estimator (LREstimator or Callable): What answers Captum's gradients.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self._engine = Engine(estimator)
        self._active = False

    def _start(self) -> None:
        with switch_lock():
            acquire(list(_targets()))
            push_switch(self._engine)
            self._active = True

    @property
    def active(self) -> bool:
        r"""Whether this switch is still on."""
        return self._active

    @property
    def queries(self) -> int:
        r"""The estimator's forward rows so far."""
        return int(getattr(self.estimator, "queries", 0))

    def undo(self) -> None:
        r"""
        Ends this switch (a second call does nothing). When no switch is
        left, every rebound name is Captum's own object again.

        Examples::

            >>> handle = patch_captum()
            >>> ...  # unchanged Captum code
            >>> handle.undo()
        """
        with switch_lock():
            if not self._active:
                return
            self._active = False
            pop_switch(self._engine)
            release(list(_targets()))

    def __enter__(self) -> CaptumPatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.undo()

    def __repr__(self) -> str:
        state = "active" if self._active else "undone"
        return f"CaptumPatch({self.estimator!r}, {state})"


def patch_captum(estimator: Any = None) -> CaptumPatch:
    r"""
    Reroutes every gradient Captum computes to a likelihood-ratio estimator,
    for Captum attributions built and used while it is active (see the
    module's documentation for what changes). Use it as a context manager,
    or call it and keep the handle to :meth:`~CaptumPatch.undo` it later.

    Args:

        estimator (LREstimator or Callable, optional): The gradient
                    estimator (anything with the call contract of Captum's
                    ``compute_gradients``).
                    Default: ``LREstimator()``

    Returns:
        *CaptumPatch*: the active switch.

    Examples::

        >>> from captum.attr import IntegratedGradients, LayerConductance
        >>> with patch_captum(LREstimator(seed=0)) as switch:
        ...     ig = IntegratedGradients(model)  # model may run under no_grad
        ...     attr = ig.attribute(x, target=1, n_steps=16)
        ...     cond = LayerConductance(model, model.sigmoid1).attribute(x, target=1)
        >>> switch.queries  # forward rows the estimator spent
        >>> handle = patch_captum()  # or as a plain call
        >>> handle.undo()
    """
    if estimator is None:
        estimator = LREstimator()
    elif not callable(estimator):
        raise TypeError(
            "estimator must be an LREstimator (or a callable with the "
            f"signature of Captum's compute_gradients), not {estimator!r}."
        )
    switch = CaptumPatch(estimator)
    switch._start()
    return switch
