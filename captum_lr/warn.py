r"""Warnings that point at the user's line, and Captum's requires-grad warning.

A warning raised with ``warnings.warn(..., stacklevel=2)`` deep inside an
attribution points into Captum's files (``captum/attr/_core/...py:366``),
because the warning's caller is Captum, not the user. :func:`warn_user`
attributes the warning to the first frame outside captum_lr, Captum, torch and
tqdm: the line of the user's code that started the attribution. Filters by
category (``warnings.filterwarnings("ignore", category=ConstantOutputWarning)``)
work as with any warning; filters by module match the user's module.

Captum's ``Saliency`` and ``InputXGradient`` mark the inputs as requiring
gradients and warn ("Input Tensor 0 did not already require gradients") before
they call ``gradient_func``; a forward-only estimator needs no gradients, so
the warning is noise there. :func:`silence_requires_grad_warning` turns it off
for the attributions whose gradient function is an
:class:`~captum_lr.LREstimator` (or that are LR classes), and only for them.
"""

from __future__ import annotations

import sys
import threading
import warnings
from types import FrameType
from typing import Any

#: Packages whose frames are skipped when looking for the user's line.
INTERNAL_PACKAGES: tuple[str, ...] = ("captum_lr", "captum", "torch", "tqdm")
# Standard-library frames that sit between captum_lr's code and the user's
# (context managers, partials, the bottom of worker threads); skipped as well.
_PASS_THROUGH = ("contextlib", "functools", "threading", "concurrent")


def _is_internal(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    if not isinstance(name, str):
        return False
    return any(
        name == pkg or name.startswith(pkg + ".")
        for pkg in INTERNAL_PACKAGES + _PASS_THROUGH
    )


def user_frame() -> FrameType | None:
    r"""
    The innermost frame of the current stack outside captum_lr, Captum, torch
    and tqdm (and the standard library's ``contextlib``, ``functools``,
    ``threading`` and ``concurrent``), or ``None`` if every frame is one of
    theirs (e.g. in a worker thread of a thread pool).

    Returns:
        *FrameType* or *None*: the user's frame.
    """
    frame = sys._getframe(1)
    while frame is not None and _is_internal(frame):
        frame = frame.f_back
    return frame


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    r"""
    Emits ``warnings.warn(message, category)`` attributed to the user's line:
    the first frame outside captum_lr, Captum, torch and tqdm, i.e. the call in
    the user's code that led here. Where there is no such frame (a worker
    thread that only runs library code), the warning is attributed to the
    direct caller of :func:`warn_user`, as ``stacklevel=2`` would.

    The warning goes through Python's filters, ``-W error``,
    ``warnings.catch_warnings`` and ``pytest.warns`` like any other, with the
    user's file, line and module.

    Args:

        message (str): The warning's text.
        category (type[Warning], optional): The warning's class.
                    Default: ``UserWarning``

    Examples::

        >>> from captum_lr.warn import warn_user
        >>> warn_user("sigma is small for this model; raise sigma.",
        ...           ConstantOutputWarning)
    """
    frame = user_frame()
    if frame is None:
        frame = sys._getframe(1)
    module_globals = frame.f_globals
    registry = module_globals.setdefault("__warningregistry__", {})
    module = module_globals.get("__name__")
    where = (frame.f_code.co_filename, frame.f_lineno)
    name = module if isinstance(module, str) else None
    try:
        warnings.warn_explicit(
            message,
            category,
            *where,
            module=name,
            registry=registry,
            module_globals=module_globals,
        )
    except ImportError:
        # a module run with ``python -m`` has a loader that cannot give its
        # source for the warning's line; warn without the source line
        warnings.warn_explicit(
            message, category, *where, module=name, registry=registry
        )


# ---------------------------------------------------------------- requires grad

_REQUIRES_GRAD_MODULES = (
    "captum.attr._core.saliency",
    "captum.attr._core.input_x_gradient",
)
_install_lock = threading.Lock()


def is_forward_only(attribution: Any) -> bool:
    r"""
    Whether an attribution computes its gradients without autograd: an LR class
    (``LRSaliency``, ...), or a Captum attribution whose ``gradient_func`` is an
    :class:`~captum_lr.LREstimator`.

    Args:

        attribution (Any): A Captum attribution (anything else gives False).

    Returns:
        *bool*
    """
    # captum_lr.attr.inputs imports this module: imported here, when called
    from captum_lr.attr.inputs import is_lr_attribution  # noqa: PLC0415

    if is_lr_attribution(attribution):
        return True
    from captum_lr.estimation.estimator import LREstimator  # noqa: PLC0415

    return isinstance(getattr(attribution, "gradient_func", None), LREstimator)


def _quiet_for_estimators(original: Any) -> Any:
    def apply_gradient_requirements(inputs: Any, warn: bool = True) -> Any:
        if warn:
            caller = sys._getframe(1).f_locals.get("self")
            if caller is not None and is_forward_only(caller):
                warn = False
        return original(inputs, warn)

    apply_gradient_requirements.__wrapped__ = original  # type: ignore[attr-defined]
    apply_gradient_requirements._captum_lr_quiet = True  # type: ignore[attr-defined]
    return apply_gradient_requirements


def silence_requires_grad_warning() -> None:
    r"""
    Stops Captum's "Input Tensor N did not already require gradients" warning
    for attributions whose gradient function is an
    :class:`~captum_lr.LREstimator` (``Saliency(f)`` with
    ``gradient_func = LREstimator()``, and the LR classes); Captum's autograd
    attributions keep it.

    Captum emits the warning in ``apply_gradient_requirements`` before it calls
    ``gradient_func``, so the estimator cannot silence it from its
    ``__call__``. This replaces the name ``apply_gradient_requirements`` in
    Captum's ``saliency`` and ``input_x_gradient`` modules with a wrapper that
    passes Captum's own ``warn=False`` when the calling attribution is
    forward-only (:func:`is_forward_only`); no warning filter is touched.
    Idempotent; ``import captum_lr`` calls it.

    Examples::

        >>> from captum_lr.warn import silence_requires_grad_warning
        >>> silence_requires_grad_warning()
    """
    with _install_lock:
        for name in _REQUIRES_GRAD_MODULES:
            module = sys.modules.get(name)
            if module is None:
                try:
                    module = __import__(name, fromlist=["_"])
                except ImportError:  # another Captum layout: nothing to patch
                    continue
            original = getattr(module, "apply_gradient_requirements", None)
            if original is None or getattr(original, "_captum_lr_quiet", False):
                continue
            module.apply_gradient_requirements = _quiet_for_estimators(original)
