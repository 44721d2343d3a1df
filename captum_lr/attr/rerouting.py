r"""Rerouting Captum's gradient helpers to the LR estimator, per context.

Captum's layer and neuron modules import their gradient helpers by name; an
LR class (or :func:`captum_lr.patch_captum`) rebinds that name in that one
module to a dispatcher (:func:`rerouted`, :func:`acquire`, :func:`release`)
that answers calls from inside an LR ``attribute`` call (a context variable)
or an active switch (:func:`push_switch`, :func:`pop_switch`) with the LR
helper, and every other call with Captum's own function. Installs are counted
under a lock and undone in ``finally``; see :mod:`captum_lr.attr.layer` for
why.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from captum._utils.gradient import (
    apply_gradient_requirements as _captum_apply_gradient_requirements,
)
from captum._utils.typing import TargetType
from torch import Tensor

from captum_lr.estimation.layer_queries import LayerGradients

_ACTIVE: ContextVar[LayerGradients | None] = ContextVar(
    "captum_lr_layer_gradients", default=None
)
# engines of active captum_lr.patch_captum() switches (process-wide), innermost
# last; an LR class's own context (_ACTIVE) takes precedence
_SWITCHED: list[LayerGradients] = []
_LOCK = threading.RLock()
_MISSING = object()
# (owner, name) -> [owner's own attribute or _MISSING, replacement, users]
_INSTALLED: dict[tuple[Any, str], list[Any]] = {}


def current_engine() -> LayerGradients | None:
    r"""The LR helpers that answer Captum's gradient calls from here: the
    enclosing LR ``attribute`` call's, else the innermost active
    :func:`~captum_lr.patch_captum` switch's, else None (Captum's own)."""
    engine = _ACTIVE.get()
    if engine is not None:
        return engine
    with _LOCK:
        return _SWITCHED[-1] if _SWITCHED else None


def switch_lock() -> threading.RLock:
    r"""
    The re-entrant lock under which the registry (:func:`acquire`,
    :func:`release`) and the active switches change: hold it to make several
    of these changes one step.

    Returns:
        *threading.RLock*
    """
    return _LOCK


def push_switch(engine: LayerGradients) -> None:
    r"""
    Makes ``engine`` the innermost active switch's (see :func:`current_engine`).

    Args:

        engine (LayerGradients): The switch's LR helpers.
    """
    with _LOCK:
        _SWITCHED.append(engine)


def pop_switch(engine: LayerGradients) -> None:
    r"""
    Ends the innermost active switch of ``engine`` (nothing if it has none).

    Args:

        engine (LayerGradients): As given to :func:`push_switch`.
    """
    with _LOCK:
        for i in range(len(_SWITCHED) - 1, -1, -1):
            if _SWITCHED[i] is engine:
                del _SWITCHED[i]
                break


@contextmanager
def switches_suspended() -> Iterator[None]:
    r"""
    Within this context no :func:`~captum_lr.patch_captum` switch answers:
    every replacement the switches installed then calls Captum's own code
    (they dispatch on the active switch at each call), so nothing is rebound.
    The switches are active again on exit (switches started inside stay
    innermost), also after an exception.

    Examples::

        >>> with switches_suspended():
        ...     grads = captum_attribution.attribute(x, target=3)  # autograd
    """
    with _LOCK:
        saved = list(_SWITCHED)
        del _SWITCHED[:]
    try:
        yield
    finally:
        with _LOCK:
            _SWITCHED[:0] = saved


class Engine(LayerGradients):
    """The LR helpers, plus Captum's ``compute_gradients`` answered by the
    estimator and ``apply_gradient_requirements`` without its "did not
    already require gradients" warning (no gradients are needed)."""

    def compute_gradients(
        self,
        forward_fn: Callable[..., Any],
        inputs: Tensor | tuple[Tensor, ...],
        target_ind: TargetType = None,
        additional_forward_args: Any = None,
    ) -> tuple[Tensor, ...]:
        return self.estimator(forward_fn, inputs, target_ind, additional_forward_args)

    def apply_gradient_requirements(
        self, inputs: tuple[Tensor, ...], warn: bool = True
    ) -> list[bool]:
        return _captum_apply_gradient_requirements(inputs, warn=False)


def _dispatcher(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Answers a Captum helper's calls with the current engine, if any."""

    @functools.wraps(original)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        engine = current_engine()
        if engine is None:
            return original(*args, **kwargs)
        return getattr(engine, name)(*args, **kwargs)

    dispatch._captum_lr_reroute = True  # type: ignore[attr-defined]
    return dispatch


Target = tuple[Any, str, Callable[[Any], Any]]
r"""``(owner, name, make)``: rebind ``owner.name`` (a module's or a class's
attribute) to ``make(current value)``."""


def acquire(targets: list[Target]) -> None:
    r"""
    Rebinds each target (the first user installs ``make(original)``; later
    users share it). All or nothing: on an error the ones done are released.

    Args:

        targets (list[tuple[Any, str, Callable]]): ``(owner, name, make)``.
    """
    done: list[Target] = []
    try:
        with _LOCK:
            for target in targets:
                owner, name, make = target
                entry = _INSTALLED.get((owner, name))
                if entry is None:
                    own = vars(owner).get(name, _MISSING)
                    replacement = make(getattr(owner, name))
                    setattr(owner, name, replacement)
                    entry = [own, replacement, 0]
                    _INSTALLED[(owner, name)] = entry
                entry[2] += 1
                done.append(target)
    except BaseException:
        release(done)
        raise


def release(targets: list[Target]) -> None:
    r"""
    Undoes :func:`acquire` for each target; the last user puts the owner's
    own attribute back (removes it where the owner had none and inherited
    it), unless someone else rebound the name in the meantime.

    Args:

        targets (list[tuple[Any, str, Callable]]): As given to :func:`acquire`.
    """
    with _LOCK:
        for owner, name, _ in targets:
            entry = _INSTALLED[(owner, name)]
            entry[2] -= 1
            if entry[2] > 0:
                continue
            del _INSTALLED[(owner, name)]
            if vars(owner).get(name, _MISSING) is not entry[1]:
                continue  # rebound by someone else since: theirs now
            if entry[0] is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, entry[0])


def helper_targets(module_name: str, names: tuple[str, ...]) -> list[Target]:
    r"""Targets that answer the module-level ``names`` of Captum's module
    ``module_name`` with the current engine's same-named methods."""
    module = importlib.import_module(module_name)
    return [(module, name, functools.partial(_dispatcher, name)) for name in names]


@contextmanager
def rerouted(
    engine: LayerGradients, module_name: str, names: tuple[str, ...]
) -> Iterator[None]:
    r"""
    Within this context, and only for calls made from it, the functions
    ``names`` of Captum's module ``module_name`` are answered by the
    same-named methods of ``engine``. Calls from other threads or contexts
    reach Captum's functions (or an active :func:`~captum_lr.patch_captum`
    switch); Captum's functions are back in place when the last user exits,
    also after an exception.

    Args:

        engine (LayerGradients): The LR helpers.
        module_name (str): E.g. ``"captum.attr._core.layer.layer_conductance"``.
        names (tuple[str, ...]): Module-level names the module calls.

    Examples::

        >>> engine = LayerGradients(LREstimator(seed=0))
        >>> with rerouted(engine, "captum.attr._core.layer.grad_cam",
        ...               ("compute_layer_gradients_and_eval",)):
        ...     attr = LayerGradCam(net, net.conv2).attribute(x, target=3)
    """
    targets = helper_targets(module_name, names)
    acquire(targets)
    token = _ACTIVE.set(engine)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        release(targets)


# ---------------------------------------------------------------- the mixin
