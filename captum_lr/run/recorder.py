r"""The kernel side of ``captum-lr run``: the switch, and a record per call.

:func:`start` runs once, hidden, in the notebook's kernel before the first
cell (:mod:`captum_lr.run.notebook` sends it as a silent execute request that
adds no cell and no execution count). It

1. turns on :func:`~captum_lr.patch_captum` with the run's estimator, for the
   kernel's lifetime;
2. then wraps, in a recorder, the ``attribute`` method of every Captum
   gradient attribution class (each subclass of ``GradientAttribution``
   exported by ``captum.attr``, and ``NoiseTunnel``), ``perturb`` of
   ``captum.robust``'s FGSM and PGD, and ``captum.metrics.sensitivity_max``.

The recorders go on top of the switch's replacements (the switch answers
FGSM's gradient without calling Captum's ``perturb``, so a recorder beneath
it would not see the call) and pass every call through unchanged.

An outermost call (one not made from inside another recorded call: the
IntegratedGradients inside a NoiseTunnel, or the attributions inside
``sensitivity_max``, belong to their caller) appends one JSON line to the
run's log: the method, the shapes of its inputs, the estimator's forward rows
during the call (the switch's ``queries``), the rows the model received
(counted by a forward pre-hook when the forward function is a
``torch.nn.Module``, so including rows Captum sends itself, such as
convergence deltas; not for scripted modules, which take no new hooks) and,
with ``compare``, the agreement with autograd. Calls of captum_lr's own LR
classes are not recorded: they spend their own estimator's rows
(``explainer.queries``).

Compare: after the estimator's call, the active switches are set aside (the
switch's replacements dispatch on the active switch at each call, so they
then run Captum's own code: the switch is undone without rebinding
anything), the global random states (torch's, NumPy's, Python's) are set
back to what they were before the call (NoiseTunnel's noise, GradientShap's
baselines and points, PGD's random start are then the same draws), the same
call runs with Captum's autograd, and the switches are put back; the random
states are then set to what they were after the estimator's call, so the
rest of the notebook sees the same random numbers with and without
``compare``. Where autograd fails (a model under ``torch.no_grad``, an
exported or quantized model) the record says why.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from captum_lr.attr.rerouting import switches_suspended
from captum_lr.patch import CaptumPatch, NeedsAutogradError, patch_captum

_SESSION: _Session | None = None


def _shapes(value: Any) -> list[list[int]]:
    """Shapes of a tensor or of the tensors of a tuple (other values skipped)."""
    if isinstance(value, torch.Tensor):
        return [list(value.shape)]
    if isinstance(value, (tuple, list)):
        return [list(v.shape) for v in value if isinstance(v, torch.Tensor)]
    return []


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a (nested) tuple or list, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    parts = [t.detach().to("cpu", torch.float64).flatten() for t in tensors]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def agreement(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    r"""
    Cosine and max relative error of an estimate against a reference.

    Args:

        estimate (Tensor): The LR result, flattened.
        reference (Tensor): Autograd's result, flattened, of the same size.

    Returns:
        *tuple[float, float]*: the cosine (1.0 when both are all zero, NaN when
        only one is) and ``max |estimate - reference| / max |reference|``
        (0.0 when both are all zero, ``inf`` when only the reference is).
    """
    a, b = estimate.double().flatten(), reference.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 and nb == 0.0:
        return 1.0, 0.0
    cosine = float(a @ b) / (na * nb) if na > 0 and nb > 0 else math.nan
    scale = float(b.abs().max()) if b.numel() else 0.0
    err = float((a - b).abs().max()) if a.numel() else 0.0
    return cosine, (err / scale if scale > 0 else math.inf)


RandomState = tuple[Any, ...]


def _rng_state() -> RandomState:
    """The global random states Captum draws from: torch's (CPU, and CUDA
    once initialised; NoiseTunnel's noise, baselines, PGD's start), NumPy's
    (GradientShap's points on the path) and Python's."""
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return torch.get_rng_state(), cuda, np.random.get_state(), random.getstate()


def _set_rng_state(state: RandomState) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])
    np.random.set_state(state[2])
    random.setstate(state[3])


@contextmanager
def _counting_rows(forward_func: Any) -> Iterator[list[int] | None]:
    """Counts the rows a ``torch.nn.Module`` receives (None for anything else:
    a plain function, or a scripted module, which takes no new hooks)."""
    if not isinstance(forward_func, torch.nn.Module) or isinstance(
        forward_func, torch.jit.ScriptModule
    ):
        yield None
        return
    count = [0]

    def pre_hook(module: Any, args: Any, kwargs: Any) -> None:
        found = _tensors(list(args)) or _tensors(list(kwargs.values()))
        if found and found[0].dim() > 0:
            count[0] += int(found[0].shape[0])

    handle = forward_func.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


class _Session:
    """The run's estimator, switch and log (one per kernel)."""

    def __init__(self, estimator: Any, compare: bool, log_path: str) -> None:
        self.estimator = estimator
        self.compare = compare
        self.log_path = log_path
        self.depth = 0
        self.switch: CaptumPatch = patch_captum(estimator)

    @property
    def queries(self) -> int:
        return int(getattr(self.estimator, "queries", 0))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def record(
        self,
        label: str,
        kind: str,
        original: Callable[..., Any],
        call: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        owner = args[0] if kind != "function" else None
        inputs = call.get("inputs")
        record: dict[str, Any] = {"method": label, "inputs": _shapes(inputs)}
        before = _rng_state()
        queries = self.queries
        start = time.perf_counter()
        self.depth += 1
        try:
            with _counting_rows(getattr(owner, "forward_func", None)) as model_rows:
                result = original(*args, **kwargs)
        except BaseException as error:
            if not isinstance(error, NeedsAutogradError):  # the cell reports it
                record.update(rows=self.queries - queries, error=type(error).__name__)
                self.write(record)
            raise
        finally:
            self.depth -= 1
        record["rows"] = self.queries - queries
        record["model_rows"] = model_rows[0] if model_rows is not None else None
        record["seconds"] = round(time.perf_counter() - start, 4)
        if self.compare:
            reference, note = self._autograd(original, args, kwargs, before)
            if note is not None:
                record["note"] = note
            record["cosine"], record["max_rel_err"] = self._agree(
                kind, call, result, reference
            )
        self.write(record)
        return result

    def _autograd(
        self,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        before: RandomState,
    ) -> tuple[Any, str | None]:
        """The same call with every switch set aside and the random states
        replayed: (result, None), or (None, why not)."""
        after = _rng_state()
        try:
            with switches_suspended():
                _set_rng_state(before)
                self.depth += 1
                try:
                    return original(*args, **kwargs), None
                except Exception as error:  # the model may not allow autograd
                    text = str(error).strip()
                    first = text.splitlines()[0] if text else ""
                    return None, f"autograd failed: {type(error).__name__}: {first}"
                finally:
                    self.depth -= 1
        finally:
            _set_rng_state(after)

    def _agree(
        self, kind: str, call: dict[str, Any], result: Any, reference: Any
    ) -> tuple[float | None, float | None]:
        if reference is None:
            return None, None
        if call.get("return_convergence_delta"):
            result, reference = result[0], reference[0]
        estimate, truth = _tensors(result), _tensors(reference)
        if kind == "perturb":  # compare the perturbations, not the images
            start = _tensors(call.get("inputs"))
            estimate = [e - s for e, s in zip(estimate, start)]
            truth = [t - s for t, s in zip(truth, start)]
        a, b = _flat(estimate), _flat(truth)
        if a.shape != b.shape:
            return None, None
        return agreement(a, b)


def _own_class(args: tuple[Any, ...], kind: str) -> bool:
    """A captum_lr class (its own estimator, its own ``queries``)."""
    if kind == "function" or not args:
        return False
    return type(args[0]).__module__.startswith("captum_lr")


def _recorder(
    label: Callable[[tuple[Any, ...], dict[str, Any]], str],
    kind: str,
    original: Callable[..., Any],
) -> Callable[..., Any]:
    """``original`` that records its outermost calls in the session's log."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        session = _SESSION
        if session is None or session.depth > 0 or _own_class(args, kind):
            return original(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return original(*args, **kwargs)  # Captum says what is wrong
        bound.apply_defaults()
        return session.record(
            label(args, bound.arguments), kind, original, bound.arguments, args, kwargs
        )

    # NoiseTunnel and GradientShap call ``attribute.__wrapped__`` of the
    # method they wrap: keep it Captum's own raw function
    inner = getattr(original, "__wrapped__", None)
    if inner is not None:
        recorded.__wrapped__ = inner  # type: ignore[attr-defined]
    recorded._captum_lr_recorder = True  # type: ignore[attr-defined]
    return recorded


def _class_label(args: tuple[Any, ...], call: dict[str, Any]) -> str:
    owner = args[0]
    name = type(owner).__name__
    inner = getattr(owner, "attribution_method", None)
    if inner is not None:  # NoiseTunnel(IntegratedGradients)
        name += f"({type(inner).__name__})"
    return name


def _sensitivity_label(args: tuple[Any, ...], call: dict[str, Any]) -> str:
    func = call.get("explanation_func")
    owner = getattr(func, "__self__", None)
    inner = type(owner).__name__ if owner is not None else getattr(func, "__name__", "")
    return f"sensitivity_max({inner})"


def _install() -> None:
    """Wraps Captum's gradient entry points in recorders (once per kernel)."""
    import captum.attr as attr  # noqa: PLC0415
    import captum.metrics as metrics  # noqa: PLC0415
    from captum.attr._utils.attribution import GradientAttribution  # noqa: PLC0415
    from captum.robust import FGSM, PGD  # noqa: PLC0415

    classes = [
        obj
        for name in dir(attr)
        if isinstance(obj := getattr(attr, name), type)
        and (issubclass(obj, GradientAttribution) or obj is attr.NoiseTunnel)
    ]
    for cls in classes:
        own = vars(cls).get("attribute")
        if own is not None and not getattr(own, "_captum_lr_recorder", False):
            cls.attribute = _recorder(_class_label, "attribute", own)
    for cls in (FGSM, PGD):
        own = vars(cls)["perturb"]
        if not getattr(own, "_captum_lr_recorder", False):
            cls.perturb = _recorder(_class_label, "perturb", own)
    import captum.metrics._core.sensitivity as sensitivity  # noqa: PLC0415

    own = sensitivity.sensitivity_max
    if not getattr(own, "_captum_lr_recorder", False):
        wrapped = _recorder(_sensitivity_label, "function", own)
        sensitivity.sensitivity_max = wrapped
        metrics.sensitivity_max = wrapped


def start(config: str) -> None:
    r"""
    Turns on :func:`~captum_lr.patch_captum` in this kernel, with a record of
    every outermost Captum gradient call appended to a log.

    Args:

        config (str): JSON with ``preset`` (a :data:`~captum_lr.PRESETS`
                    key), ``overrides`` (keyword arguments of
                    :class:`~captum_lr.LREstimator`, e.g. ``n_samples``,
                    ``seed``), ``compare`` (bool) and ``log`` (the path of
                    the JSON-lines log).

    Examples::

        >>> start('{"preset": "default", "overrides": {"seed": 0}, '
        ...       '"compare": true, "log": "/tmp/calls.jsonl"}')
    """
    global _SESSION
    from captum_lr.estimation.presets import make_estimator  # noqa: PLC0415

    settings = json.loads(config)
    if _SESSION is not None:
        raise RuntimeError("captum-lr run: the kernel is already set up.")
    estimator = make_estimator(settings["preset"], **settings.get("overrides", {}))
    _SESSION = _Session(estimator, bool(settings.get("compare")), settings["log"])
    _install()
