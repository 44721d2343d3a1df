r"""Forward functions of a layer's activation: layer gradients without autograd.

For a torch module, the rest of the network after a layer is a forward
function of that layer's output. :class:`LayerForward` is that function: it
runs the model on the model's real inputs (expanded to the estimator's rows)
with a forward hook that replaces the layer's output (or, with
``attribute_to_layer_input=True``, a forward pre-hook that replaces its input)
by the rows the estimator sends. The estimator perturbs the activation, never
the layer's weights, and never the model's inputs; its designs, exact sweeps,
noise streams and standard errors carry over unchanged.

:class:`NeuronForward` is the other direction that Captum's neuron methods
need: the value of one neuron (a ``neuron_selector``) as a function of the
model's inputs, read by a hook; it stops the forward pass once the layer has
run, so the rest of the network costs nothing.

:class:`LayerGradients` computes Captum's layer-gradient helpers from
``captum._utils.gradient`` (``compute_layer_gradients_and_eval``,
``_forward_layer_eval_with_neuron_grads``, ``construct_neuron_grad_fn``) with
an estimator and these forward functions, with the same signatures and
returns, so Captum's layer and neuron classes run unchanged on top of them
(:mod:`captum_lr.attr.layer`).

Rows and costs: each call first evaluates the layer at the unperturbed
inputs (one forward row per input row, through the attribution's counted
forward function); then the estimator sends its rows
(``estimator.queries_for(activations)`` per row). The model's inputs reach
the estimator's forward function as ``additional_forward_args``, so the
estimator expands them (and per-row targets and Captum's additional
arguments) to the rows it sends, exactly as it expands its own.

Multiple devices: as in Captum, a ``DataParallel`` forward runs the hooks once
per device. The evaluation gathers the devices' activations in the order of
``device_ids`` (or the forward function's own ``device_ids``); the
replacement scatters the estimator's rows over ``device_ids`` the way Captum's
``LayerIntegratedGradients`` does (``torch.nn.parallel.scatter``) and each
device's hook takes its own chunk. Only the single-device path is tested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.common import (
    _format_additional_forward_args,
    _format_tensor_into_tuples,
    _reduce_list,
    _run_forward,
    _sort_key_list,
)
from torch import Tensor
from torch.nn import Module

from captum_lr.estimation.neuron_select import NeuronSelector, select_neurons
from captum_lr.estimation.queries import CountingForward


class _StopForward(Exception):
    """Raised by a hook once the layer has run: the rest is not needed."""


def unwrap_forward(forward_fn: Callable[..., Any]) -> Callable[..., Any]:
    r"""The user's forward function inside the LR classes' row counter."""
    while isinstance(forward_fn, CountingForward):
        forward_fn = forward_fn.forward_fn
    return forward_fn


def layers_of(layer: Module | Sequence[Module]) -> list[Module]:
    r"""Captum's ``layer`` argument (a module or a list of them) as a list."""
    return [layer] if isinstance(layer, Module) else list(layer)


def _name(layer: Module) -> str:
    return type(layer).__name__


def _where(attribute_to_layer_input: bool) -> str:
    return "input" if attribute_to_layer_input else "output"


def _as_tensors(
    value: Any, layer: Module, attribute_to_layer_input: bool
) -> tuple[Tensor, ...]:
    """A hook's tensor or tuple/list of tensors as a tuple, or a TypeError."""
    parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    for i, t in enumerate(parts):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"the {_where(attribute_to_layer_input)} of layer {_name(layer)} "
                f"holds a {type(t).__name__} at position {i}; Captum's layer "
                "methods and the estimator need the layer's "
                f"{_where(attribute_to_layer_input)} to be a tensor or a tuple "
                "of tensors (choose a submodule whose output is)."
            )
    return parts


def _device_ids(
    forward_fn: Callable[..., Any], device_ids: list[int] | None
) -> list[int] | None:
    if device_ids is not None:
        return device_ids
    return getattr(unwrap_forward(forward_fn), "device_ids", None)


def _gather(
    saved: dict[torch.device, tuple[Tensor, ...]],
    device_ids: list[int] | None,
    layer: Module,
) -> tuple[Tensor, ...]:
    """The devices' tensors concatenated in ``device_ids`` order (Captum's)."""
    keys = list(saved)
    if len(keys) > 1 and device_ids is None:
        raise ValueError(
            f"layer {_name(layer)} ran on {len(keys)} devices but no device_ids "
            "were given and the forward function has none: pass device_ids= "
            "(the DataParallel's device order) to the attribution."
        )
    ordered = _sort_key_list(keys, device_ids)
    return _reduce_list([saved[k] for k in ordered])


@dataclass
class LayerEval:
    r"""The unperturbed activations of one or more layers.

    Args:

        acts (list[tuple[Tensor, ...]]): Per layer, its output (or input)
                    tensors, detached, rows of all devices gathered.
        calls (list[int]): Per layer, how often it ran in one forward pass
                    (per device); Captum differentiates its last run.
    """

    acts: list[tuple[Tensor, ...]]
    calls: list[int]

    @property
    def flat(self) -> tuple[Tensor, ...]:
        r"""All layers' tensors in one tuple (the estimator's inputs)."""
        return tuple(t for part in self.acts for t in part)

    @property
    def parts(self) -> list[int]:
        r"""The number of tensors of each layer."""
        return [len(a) for a in self.acts]


def layer_eval(
    forward_fn: Callable[..., Any],
    inputs: tuple[Any, ...],
    layers: list[Module],
    additional_forward_args: tuple[Any, ...] | None,
    device_ids: list[int] | None = None,
    attribute_to_layer_input: bool = False,
) -> LayerEval:
    r"""
    Runs ``forward_fn`` once, without gradients, and records each layer's
    output (or input) at its last run and how often it ran.

    Args:

        forward_fn (Callable): The forward function (counted if it is the
                    attribution's :class:`CountingForward`).
        inputs (tuple): The model's inputs.
        layers (list[Module]): The layers.
        additional_forward_args (tuple, optional): Captum's extra arguments.
        device_ids (list[int], optional): The DataParallel device order.
        attribute_to_layer_input (bool): Record inputs instead of outputs.

    Returns:
        *LayerEval*
    """
    lock = threading.Lock()
    saved: list[dict[torch.device, tuple[Tensor, ...]]] = [{} for _ in layers]
    counts: list[dict[torch.device, int]] = [{} for _ in layers]

    def make_hook(i: int, layer: Module) -> Callable[..., None]:
        def hook(module: Module, args: Any, out: Any = None) -> None:
            value = args if attribute_to_layer_input else out
            tensors = _as_tensors(value, layer, attribute_to_layer_input)
            with lock:
                device = tensors[0].device if tensors else torch.device("cpu")
                saved[i][device] = tuple(t.detach().clone() for t in tensors)
                counts[i][device] = counts[i].get(device, 0) + 1

        return hook

    handles = []
    try:
        for i, layer in enumerate(layers):
            hook = make_hook(i, layer)
            if attribute_to_layer_input:
                handles.append(layer.register_forward_pre_hook(hook))
            else:
                handles.append(layer.register_forward_hook(hook))
        with torch.no_grad():
            _run_forward(
                forward_fn, inputs, additional_forward_args=additional_forward_args
            )
    finally:
        for handle in handles:
            handle.remove()
    ids = _device_ids(forward_fn, device_ids)
    acts = []
    for layer, per_device in zip(layers, saved):
        if not per_device:
            raise ValueError(
                f"layer {_name(layer)} did not run in the forward function: "
                "pass a submodule that the forward pass calls (its forward "
                "hooks must fire; a torch.jit.script or exported model runs no "
                "hooks)."
            )
        acts.append(_gather(per_device, ids, layer))
    calls = [max(c.values()) for c in counts]
    return LayerEval(acts, calls)


def activation_at_inputs(
    forward_fn: Callable[..., Any],
    inputs: Any,
    layer: Module | Sequence[Module],
    additional_forward_args: Any = None,
    device_ids: list[int] | None = None,
    attribute_to_layer_input: bool = False,
) -> tuple[Tensor, ...]:
    r"""
    The layer's (or layers') activation at Captum-style ``inputs``, all
    tensors in one tuple (one forward row per example): the noise-scale
    reference of a layer method's rows under ``sigma="auto"``, so that each
    path point's noise does not follow its own activation (near a zero
    baseline too small for float32 outputs).

    Args:

        forward_fn (Callable): The forward function (counted if it counts).
        inputs (Tensor or tuple[Tensor, ...]): The model's inputs.
        layer (Module or list[Module]): Captum's ``layer``.
        additional_forward_args (Any, optional): As in Captum.
        device_ids (list[int], optional): The DataParallel device order.
        attribute_to_layer_input (bool, optional): The layer's input instead.

    Returns:
        *tuple[Tensor, ...]*
    """
    return layer_eval(
        forward_fn,
        _format_tensor_into_tuples(inputs),
        layers_of(layer),
        _format_additional_forward_args(additional_forward_args),
        device_ids,
        attribute_to_layer_input,
    ).flat


def _check_activations(
    evaluated: LayerEval,
    layers: list[Module],
    rows: int,
    attribute_to_layer_input: bool,
) -> None:
    for layer, part in zip(layers, evaluated.acts):
        for t in part:
            if not t.dtype.is_floating_point:
                raise ValueError(
                    f"the {_where(attribute_to_layer_input)} of layer "
                    f"{_name(layer)} has dtype {t.dtype}; the estimator perturbs "
                    "floating-point activations only (for token ids, attribute "
                    "to the embedding layer's output: "
                    "attribute_to_layer_input=False)."
                )
            if t.dim() == 0 or t.shape[0] != rows:
                got = "a scalar" if t.dim() == 0 else f"shape {tuple(t.shape)}"
                raise ValueError(
                    f"the {_where(attribute_to_layer_input)} of layer "
                    f"{_name(layer)} has {got} for a batch of {rows} input rows; "
                    "the estimator perturbs each example's activation, so the "
                    "layer's first dimension must be the batch (e.g. "
                    "batch_first=True for recurrent layers)."
                )


class LayerForward:
    r"""
    The model as a function of one or more layers' activations.

    Called as ``fn(*activations, *model_args)``: the first ``sum(parts)``
    arguments are the activation rows (the estimator's perturbed rows), the
    rest are passed to ``forward_fn`` (the model's inputs and Captum's
    additional arguments, expanded to the same rows). Hooks replace each
    layer's output (or input) by its activation rows: at every run
    (``calls=None``, as Captum's LayerIntegratedGradients does), or only at
    the run Captum differentiates, the last of ``calls[i]`` runs.

    With ``additive``, the next ``sum(parts)`` arguments are the activations
    at the model's inputs, and each hook adds the estimator's step (its row
    minus that activation) to the activation the forward pass computed,
    instead of replacing it: a perturbation of an earlier layer then still
    reaches a later one, so each layer's gradient is the total derivative
    autograd gives for several layers at once
    (``compute_layer_gradients_and_eval`` with a list of layers).

    Args:

        forward_fn (Callable): The model's forward function (not counted).
        layers (list[Module]): The layers.
        parts (list[int]): The number of activation tensors of each layer.
        attribute_to_layer_input (bool): Replace inputs instead of outputs.
        calls (list[int], optional): Runs of each layer per forward pass; the
                    last is replaced. None replaces every run.
        device_ids (list[int], optional): The DataParallel device order.
        additive (bool, optional): Add each row's step to the computed
                    activation instead of replacing it.
    """

    def __init__(
        self,
        forward_fn: Callable[..., Any],
        layers: list[Module],
        parts: list[int],
        attribute_to_layer_input: bool = False,
        calls: list[int] | None = None,
        device_ids: list[int] | None = None,
        additive: bool = False,
    ) -> None:
        self.forward_fn = unwrap_forward(forward_fn)
        self.layers = layers
        self.parts = parts
        self.attribute_to_layer_input = attribute_to_layer_input
        self.calls = calls
        self.device_ids = _device_ids(forward_fn, device_ids)
        self.additive = additive

    def _by_device(self, acts: tuple[Tensor, ...]) -> dict[Any, tuple[Tensor, ...]]:
        if self.device_ids is None or len(self.device_ids) <= 1:
            return {None: acts}
        from torch.nn.parallel.scatter_gather import scatter  # noqa: PLC0415

        chunks = scatter(acts, target_gpus=self.device_ids)
        return {chunk[0].device: tuple(chunk) for chunk in chunks}

    def __call__(self, *args: Any) -> Any:
        k = sum(self.parts)
        carried = 2 * k if self.additive else k
        acts, rest = args[:carried], args[carried:]
        by_device = self._by_device(tuple(acts))
        lock = threading.Lock()
        runs: list[dict[Any, int]] = [{} for _ in self.layers]
        replaced = [0] * len(self.layers)
        starts = [sum(self.parts[:i]) for i in range(len(self.layers))]

        def make_hook(i: int, layer: Module) -> Callable[..., Any]:
            def hook(module: Module, hook_args: Any, out: Any = None) -> Any:
                value = hook_args if self.attribute_to_layer_input else out
                current = _as_tensors(value, layer, self.attribute_to_layer_input)
                device = current[0].device if current else None
                with lock:
                    run = runs[i].get(device, 0) + 1
                    runs[i][device] = run
                if self.calls is not None and run != self.calls[i]:
                    return None
                rows = by_device.get(device, by_device.get(None))
                if rows is None:
                    rows = next(iter(by_device.values()))
                mine = rows[starts[i] : starts[i] + self.parts[i]]
                if self.additive:  # step = row - activation at the inputs
                    bases = rows[k + starts[i] : k + starts[i] + self.parts[i]]
                    mine = tuple(
                        c + (r - b).to(device=c.device, dtype=c.dtype)
                        for c, r, b in zip(current, mine, bases)
                    )
                where = _where(self.attribute_to_layer_input)
                if len(mine) != len(current):
                    raise ValueError(
                        f"layer {_name(layer)}'s {where} has {len(current)} "
                        f"tensors in this forward pass but {len(mine)} when it "
                        "was evaluated."
                    )
                new = []
                for cur, rep in zip(current, mine):
                    if cur.shape != rep.shape:
                        raise ValueError(
                            f"layer {_name(layer)}'s {where} has shape "
                            f"{tuple(cur.shape)} in a forward pass of "
                            f"{rep.shape[0]} rows, where the estimator sends "
                            f"{tuple(rep.shape)}: the layer's first dimension "
                            "must be the batch, and its shape must not depend "
                            "on the values of the activation."
                        )
                    # a fresh tensor: later in-place operations of the model
                    # must not write into the estimator's rows
                    new.append(
                        rep.to(device=cur.device, dtype=cur.dtype).clone(
                            memory_format=torch.contiguous_format
                        )
                    )
                with lock:
                    replaced[i] += 1
                if isinstance(value, tuple):
                    return tuple(new)
                if isinstance(value, list):
                    return new
                return (new[0],) if self.attribute_to_layer_input else new[0]

            return hook

        handles = []
        try:
            for i, layer in enumerate(self.layers):
                hook = make_hook(i, layer)
                if self.attribute_to_layer_input:
                    handles.append(layer.register_forward_pre_hook(hook))
                else:
                    handles.append(layer.register_forward_hook(hook))
            out = self.forward_fn(*rest)
        finally:
            for handle in handles:
                handle.remove()
        for layer, count in zip(self.layers, replaced):
            if count == 0:
                raise ValueError(
                    f"layer {_name(layer)} did not run its evaluated number of "
                    "times in a forward pass of perturbed activations, so its "
                    "activation could not be replaced: the estimator needs a "
                    "forward pass whose structure does not depend on the "
                    "activation's values."
                )
        return out


class NeuronForward:
    r"""
    The value of one neuron of a layer (Captum's ``neuron_selector``) as a
    function of the model's inputs: one value per row.

    A hook records the layer's output (or input) at its last run in the
    forward pass; once the number of runs per pass is known (``calls``, or
    learnt from the first call), the pass stops right after that run on a
    single device, so the rest of the network is not evaluated.

    Args:

        forward_fn (Callable): The model's forward function (not counted).
        layer (Module): The layer.
        neuron_selector (int, tuple or Callable): As in Captum.
        attribute_to_layer_input (bool): Select from the layer's input.
        device_ids (list[int], optional): The DataParallel device order.
        calls (int, optional): Runs of the layer per forward pass, if known.
    """

    def __init__(
        self,
        forward_fn: Callable[..., Any],
        layer: Module,
        neuron_selector: NeuronSelector,
        attribute_to_layer_input: bool = False,
        device_ids: list[int] | None = None,
        calls: int | None = None,
    ) -> None:
        self.forward_fn = unwrap_forward(forward_fn)
        self.layer = layer
        self.neuron_selector = neuron_selector
        self.attribute_to_layer_input = attribute_to_layer_input
        self.device_ids = _device_ids(forward_fn, device_ids)
        self.calls = calls
        self._checked = False  # a batch-level selector adds up (checked once)

    def __call__(self, *args: Any) -> Tensor:
        lock = threading.Lock()
        saved: dict[torch.device, tuple[Tensor, ...]] = {}
        runs: dict[torch.device, int] = {}
        single = self.device_ids is None or len(self.device_ids) <= 1
        stop_after = self.calls if single else None

        def hook(module: Module, hook_args: Any, out: Any = None) -> None:
            value = hook_args if self.attribute_to_layer_input else out
            tensors = _as_tensors(value, self.layer, self.attribute_to_layer_input)
            device = tensors[0].device if tensors else torch.device("cpu")
            with lock:
                saved[device] = tuple(t.detach().clone() for t in tensors)
                runs[device] = runs.get(device, 0) + 1
                done = stop_after is not None and runs[device] == stop_after
            if done:
                raise _StopForward

        if self.attribute_to_layer_input:
            handle = self.layer.register_forward_pre_hook(hook)
        else:
            handle = self.layer.register_forward_hook(hook)
        stopped = False
        try:
            self.forward_fn(*args)
        except _StopForward:
            stopped = True
        finally:
            handle.remove()
        if not saved:
            raise ValueError(
                f"layer {_name(self.layer)} did not run in the forward function: "
                "pass a submodule that the forward pass calls (its forward "
                "hooks must fire)."
            )
        if not stopped and self.calls is None:
            self.calls = max(runs.values())
        layer_out = _gather(saved, self.device_ids, self.layer)
        value = select_neurons(layer_out, self.neuron_selector, check=not self._checked)
        self._checked = True
        return value


def _streams(
    factory: Callable[[], AbstractContextManager[Any]] | None,
) -> AbstractContextManager[Any]:
    return nullcontext() if factory is None else factory()


class LayerGradients:
    r"""
    Captum's layer-gradient helpers (``captum._utils.gradient``) computed by an
    estimator from forward passes, with Captum's signatures and returns.

    Args:

        estimator (Callable): An :class:`~captum_lr.LREstimator` (anything with
                    the call contract of Captum's ``compute_gradients``).
        neuron_streams (Callable, optional): Returns the context manager the
                    neuron-to-input gradients run in (the estimator's
                    ``noise_streams`` for their row layout), when it differs
                    from the one the layer gradients run in.
                    Default: None
    """

    def __init__(
        self,
        estimator: Callable[..., tuple[Tensor, ...]],
        neuron_streams: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.estimator = estimator
        self.neuron_streams = neuron_streams
        # runs per forward pass of each (layer, input side) seen in this call
        self._calls: dict[tuple[int, bool], int] = {}

    def counted(self, forward_fn: Callable[..., Any]) -> Callable[..., Any]:
        """The forward function, counting its rows with the estimator's
        queries (the LR classes pass one that counts already)."""
        counter = getattr(self.estimator, "count_queries", None)
        if counter is None or isinstance(forward_fn, CountingForward):
            return forward_fn
        return CountingForward(forward_fn, counter)

    def compute_layer_gradients_and_eval(
        self,
        forward_fn: Callable[..., Any],
        layer: Module | list[Module],
        inputs: Tensor | tuple[Tensor, ...],
        target_ind: Any = None,
        additional_forward_args: Any = None,
        gradient_neuron_selector: NeuronSelector = None,
        device_ids: list[int] | None = None,
        attribute_to_layer_input: bool = False,
        output_fn: Callable[..., Any] | None = None,
        grad_kwargs: dict[str, Any] | None = None,
        offload_to_cpu: bool = False,
    ) -> Any:
        r"""
        Captum's ``compute_layer_gradients_and_eval``: the gradients of the
        selected output with respect to the layer's output (or input), estimated
        by perturbing that activation, and the activation itself. With a
        ``gradient_neuron_selector``, also the gradients of that neuron with
        respect to the inputs (estimated by perturbing the inputs).
        ``grad_kwargs`` (arguments of ``torch.autograd.grad``) has no meaning
        here and is ignored.

        Args:

            forward_fn (Callable): The forward function.
            layer (Module or list[Module]): The layer(s).
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs.
            target_ind (TargetType, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            gradient_neuron_selector (optional): As in Captum.
            device_ids (list[int], optional): As in Captum.
            attribute_to_layer_input (bool, optional): As in Captum.
            output_fn (Callable, optional): Applied to the activations and
                        gradients, as in Captum.
            grad_kwargs (dict, optional): Ignored.
            offload_to_cpu (bool, optional): Move the results to the CPU.

        Returns:
            ``(gradients, evals)`` or ``(gradients, evals, input_gradients)``,
            per layer as in Captum (a list for a list of layers).
        """
        inputs = _format_tensor_into_tuples(inputs)
        args = _format_additional_forward_args(additional_forward_args)
        layers = layers_of(layer)
        evaluated = layer_eval(
            self.counted(forward_fn),
            inputs,
            layers,
            args,
            device_ids,
            attribute_to_layer_input,
        )
        _check_activations(
            evaluated, layers, inputs[0].shape[0], attribute_to_layer_input
        )
        several = len(layers) > 1  # a step of one layer must reach the next
        fn = LayerForward(
            forward_fn,
            layers,
            evaluated.parts,
            attribute_to_layer_input,
            calls=evaluated.calls,
            device_ids=device_ids,
            additive=several,
        )
        bases = evaluated.flat if several else ()
        flat_grads = self.estimator(
            fn, evaluated.flat, target_ind, bases + tuple(inputs) + tuple(args or ())
        )
        grads: list[tuple[Tensor, ...]] = []
        start = 0
        for n in evaluated.parts:
            grads.append(tuple(flat_grads[start : start + n]))
            start += n
        evals = evaluated.acts
        if output_fn is not None:
            evals = [output_fn(e) for e in evals]
            grads = [output_fn(g) for g in grads]
        if offload_to_cpu:
            evals = [tuple(t.cpu() for t in e) for e in evals]
            grads = [tuple(t.cpu() for t in g) for g in grads]
        if isinstance(layer, Module):
            layer_grads: Any = grads[0]
            layer_evals: Any = evals[0]
        else:
            layer_grads, layer_evals = grads, evals
        if gradient_neuron_selector is None:
            return layer_grads, layer_evals
        if not isinstance(layer, Module):
            raise ValueError(
                "Cannot compute neuron gradients for multiple layers simultaneously!"
            )
        self._calls[(id(layer), attribute_to_layer_input)] = evaluated.calls[0]
        input_grads = self.neuron_input_gradients(
            forward_fn,
            inputs,
            layer,
            args,
            gradient_neuron_selector,
            device_ids,
            attribute_to_layer_input,
        )
        return layer_grads, layer_evals, input_grads

    def neuron_input_gradients(
        self,
        forward_fn: Callable[..., Any],
        inputs: Tensor | tuple[Tensor, ...],
        layer: Module,
        additional_forward_args: Any,
        neuron_selector: NeuronSelector,
        device_ids: list[int] | None = None,
        attribute_to_layer_input: bool = False,
    ) -> tuple[Tensor, ...]:
        r"""
        The gradients of the selected neuron with respect to the inputs,
        estimated by perturbing the inputs (one tensor per input).

        Args:

            forward_fn (Callable): The forward function.
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs
                        (floating-point: they are perturbed).
            layer (Module): The layer holding the neuron.
            additional_forward_args (Any): As in Captum.
            neuron_selector (int, tuple or Callable): As in Captum.
            device_ids (list[int], optional): As in Captum.
            attribute_to_layer_input (bool, optional): The neuron is in the
                        layer's input.

        Returns:
            *tuple[Tensor, ...]* of gradients shaped like the inputs.
        """
        key = (id(layer), attribute_to_layer_input)
        fn = NeuronForward(
            forward_fn,
            layer,
            neuron_selector,
            attribute_to_layer_input,
            device_ids,
            calls=self._calls.get(key),
        )
        with _streams(self.neuron_streams):
            grads = self.estimator(
                fn,
                _format_tensor_into_tuples(inputs),
                None,
                _format_additional_forward_args(additional_forward_args),
            )
        if fn.calls is not None:
            self._calls[key] = fn.calls
        return grads

    def _forward_layer_eval_with_neuron_grads(
        self,
        forward_fn: Callable[..., Any],
        inputs: Tensor | tuple[Tensor, ...],
        layer: Any,
        additional_forward_args: Any = None,
        gradient_neuron_selector: NeuronSelector = None,
        grad_enabled: bool = False,
        device_ids: list[int] | None = None,
        attribute_to_layer_input: bool = False,
    ) -> Any:
        r"""
        Captum's ``_forward_layer_eval_with_neuron_grads``: the layer's
        activation and, with a ``gradient_neuron_selector``, the gradients of
        that neuron with respect to the inputs. ``grad_enabled`` is ignored.

        Args:

            forward_fn (Callable): The forward function.
            inputs (Tensor or tuple[Tensor, ...]): The model's inputs.
            layer (Module or list[Module]): The layer(s).
            additional_forward_args (Any, optional): As in Captum.
            gradient_neuron_selector (optional): As in Captum.
            grad_enabled (bool, optional): Ignored.
            device_ids (list[int], optional): As in Captum.
            attribute_to_layer_input (bool, optional): As in Captum.

        Returns:
            The activation (per layer), or ``(activation, input_gradients)``.
        """
        inputs = _format_tensor_into_tuples(inputs)
        args = _format_additional_forward_args(additional_forward_args)
        evaluated = layer_eval(
            self.counted(forward_fn),
            inputs,
            layers_of(layer),
            args,
            device_ids,
            attribute_to_layer_input,
        )
        acts: Any = evaluated.acts[0] if isinstance(layer, Module) else evaluated.acts
        if gradient_neuron_selector is None:
            return acts
        if not isinstance(layer, Module):
            raise ValueError(
                "Cannot compute neuron gradients for multiple layers simultaneously!"
            )
        self._calls[(id(layer), attribute_to_layer_input)] = evaluated.calls[0]
        grads = self.neuron_input_gradients(
            forward_fn,
            inputs,
            layer,
            args,
            gradient_neuron_selector,
            device_ids,
            attribute_to_layer_input,
        )
        return acts, grads

    def construct_neuron_grad_fn(
        self,
        layer: Module,
        neuron_selector: NeuronSelector,
        device_ids: list[int] | None = None,
        attribute_to_neuron_input: bool = False,
    ) -> Callable[..., tuple[Tensor, ...]]:
        r"""
        Captum's ``construct_neuron_grad_fn``: a ``gradient_func`` returning the
        gradients of the selected neuron with respect to the inputs (the
        target is ignored, as in Captum).

        Args:

            layer (Module): The layer holding the neuron.
            neuron_selector (int, tuple or Callable): As in Captum.
            device_ids (list[int], optional): As in Captum.
            attribute_to_neuron_input (bool, optional): As in Captum.

        Returns:
            *Callable* with the signature of ``compute_gradients``.
        """

        def grad_fn(
            forward_fn: Callable[..., Any],
            inputs: Tensor | tuple[Tensor, ...],
            target_ind: Any = None,
            additional_forward_args: Any = None,
        ) -> tuple[Tensor, ...]:
            return self.neuron_input_gradients(
                forward_fn,
                inputs,
                layer,
                additional_forward_args,
                neuron_selector,
                device_ids,
                attribute_to_neuron_input,
            )

        return grad_fn

    def layer_path_gradient_func(
        self,
        model_fn: Callable[..., Any],
        layers: list[Module],
        parts: list[int],
        attribute_to_layer_input: bool = False,
        device_ids: list[int] | None = None,
    ) -> Callable[..., tuple[Tensor, ...]]:
        r"""
        The ``gradient_func`` Captum's LayerIntegratedGradients gives its inner
        IntegratedGradients: gradients with respect to the layers' activations
        along the path, where the model's inputs arrive (expanded) as the
        additional forward arguments and every run of a layer is replaced.

        Args:

            model_fn (Callable): The model's forward function (Captum's
                        inner IntegratedGradients passes its own, which is
                        not used: the layer attribution's is).
            layers (list[Module]): The layers.
            parts (list[int]): The number of tensors of each layer.
            attribute_to_layer_input (bool, optional): As in Captum.
            device_ids (list[int], optional): As in Captum.

        Returns:
            *Callable* with the signature of ``compute_gradients``.
        """

        def gradient_func(
            forward_fn: Callable[..., Any],
            inputs: Tensor | tuple[Tensor, ...],
            target_ind: Any = None,
            additional_forward_args: Any = None,
        ) -> tuple[Tensor, ...]:
            fn = LayerForward(
                model_fn,
                layers,
                parts,
                attribute_to_layer_input,
                calls=None,
                device_ids=device_ids,
            )
            return self.estimator(
                fn,
                _format_tensor_into_tuples(inputs),
                target_ind,
                _format_additional_forward_args(additional_forward_args),
            )

        return gradient_func
