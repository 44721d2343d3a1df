"""captum_lr.warn: warnings attributed to the user's line, and Captum's
requires-grad warning silenced where an LREstimator computes the gradients."""

import inspect
import threading
import warnings

import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from captum_lr import (
    ConstantOutputWarning,
    LREstimator,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.warn import (
    is_forward_only,
    silence_requires_grad_warning,
    user_frame,
    warn_user,
)


class DeepWarning(UserWarning):
    pass


# Code that lives "inside" captum_lr (module name captum_lr._fake_estimator):
# a gradient function that warns, as the estimator does, from under Captum.
FAKE_SOURCE = """
import threading

import torch

from captum_lr.warn import warn_user


def gradient_func(forward_fn, inputs, target_ind=None, additional_forward_args=None):
    warn_user("from inside the estimator", DeepWarning)
    return tuple(torch.zeros_like(t) for t in inputs)


def warn_in_a_thread():
    thread = threading.Thread(target=lambda: warn_user("in a thread", DeepWarning))
    thread.start()
    thread.join()
"""
FAKE_FILE = "/nowhere/captum_lr/_fake_estimator.py"


@pytest.fixture(scope="module")
def fake():
    namespace = {"__name__": "captum_lr._fake_estimator", "DeepWarning": DeepWarning}
    exec(compile(FAKE_SOURCE, FAKE_FILE, "exec"), namespace)
    return namespace


def f(x):
    with torch.no_grad():
        return x.sum(1, keepdim=True).repeat(1, 3)


def here() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


def only(record, category=DeepWarning):
    found = [w for w in record if issubclass(w.category, category)]
    assert len(found) == 1, [str(w.message) for w in record]
    return found[0]


@pytest.mark.parametrize(
    "wrap", ["ig", "saliency", "noise_tunnel", "captum_gradient_func"]
)
def test_warnings_from_under_captum_point_at_the_users_call(fake, wrap):
    x = torch.randn(2, 4)
    grad = fake["gradient_func"]
    if wrap == "ig":
        explainer, kw = LRIntegratedGradients(f, estimator=grad), {"n_steps": 2}
    elif wrap == "saliency":
        explainer, kw = LRSaliency(f, estimator=grad), {}
    elif wrap == "noise_tunnel":
        explainer = NoiseTunnel(LRIntegratedGradients(f, estimator=grad))
        kw = {"n_steps": 2, "nt_samples": 2}
    else:
        explainer, kw = IntegratedGradients(f), {"n_steps": 2}
        explainer.gradient_func = grad
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = here()
        explainer.attribute(x, target=0, **kw)
    w = only(record)
    assert (w.filename, w.lineno) == (__file__, line)
    assert str(w.message) == "from inside the estimator"


def test_called_directly_it_points_at_the_caller():
    with pytest.warns(DeepWarning, match="direct") as record:
        line = here()
        warn_user("direct", DeepWarning)
    assert (record[0].filename, record[0].lineno) == (__file__, line)
    assert user_frame().f_code.co_filename == __file__


def test_default_category_is_user_warning():
    with pytest.warns(UserWarning, match="plain"):
        warn_user("plain")


def test_without_a_user_frame_it_points_at_the_direct_caller(fake):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fake["warn_in_a_thread"]()
    w = only(record)
    assert w.filename == FAKE_FILE
    assert "warn_user" in FAKE_SOURCE.splitlines()[w.lineno - 1]


def test_filters_see_the_users_module_and_the_category(fake):
    x = torch.randn(2, 4)
    ig = LRIntegratedGradients(f, estimator=fake["gradient_func"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeepWarning)
        ig.attribute(x, target=0, n_steps=2)
    assert not [w for w in record if issubclass(w.category, DeepWarning)]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeepWarning, module=__name__)
        with pytest.raises(DeepWarning):
            ig.attribute(x, target=0, n_steps=2)


def test_once_per_location_by_default(fake):
    # the "default" action shows a warning once per (user) line: the registry
    # is the user's module's, as with warnings.warn(stacklevel=...)
    x = torch.randn(2, 4)
    ig = LRIntegratedGradients(f, estimator=fake["gradient_func"])
    with warnings.catch_warnings(record=True) as record:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for _ in range(3):
            ig.attribute(x, target=0, n_steps=2)
    assert len([w for w in record if issubclass(w.category, DeepWarning)]) == 1


def test_estimator_warnings_point_at_the_users_call():
    def rounded(x):
        with torch.no_grad():
            return (x.sum(1, keepdim=True) * 0).repeat(1, 3)

    ig = LRIntegratedGradients(rounded, estimator=LREstimator(seed=0))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = here()
        ig.attribute(torch.randn(2, 4), target=0, n_steps=2)
    w = only(record, ConstantOutputWarning)
    assert (w.filename, w.lineno) == (__file__, line)


# ------------------------------------------------------------- requires grad


@pytest.mark.parametrize("captum_class", [Saliency, InputXGradient])
def test_captum_class_with_lr_estimator_does_not_warn_about_requires_grad(
    captum_class,
):
    explainer = captum_class(f)
    explainer.gradient_func = LREstimator(seed=0)
    assert is_forward_only(explainer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = explainer.attribute(torch.randn(2, 4), target=0)
    assert out.shape == (2, 4)


def test_lr_classes_with_a_custom_gradient_function_do_not_warn(fake):
    def grad(forward_fn, inputs, target_ind=None, additional_forward_args=None):
        return tuple(torch.zeros_like(t) for t in inputs)

    for cls in (LRSaliency, LRInputXGradient):
        explainer = cls(f, estimator=grad)
        assert is_forward_only(explainer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            explainer.attribute(torch.randn(2, 4), target=0)


@pytest.mark.parametrize("captum_class", [Saliency, InputXGradient])
def test_autograd_captum_classes_keep_their_warning(captum_class):
    net = torch.nn.Linear(4, 3)
    assert not is_forward_only(captum_class(net))
    with pytest.warns(UserWarning, match="did not already require gradients"):
        captum_class(net).attribute(torch.randn(2, 4), target=0)


def test_silencing_is_idempotent_and_thread_safe():
    import captum.attr._core.saliency as saliency_module

    threads = [threading.Thread(target=silence_requires_grad_warning) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    patched = saliency_module.apply_gradient_requirements
    inner = patched.__wrapped__
    assert not getattr(inner, "_captum_lr_quiet", False)
    assert inner.__module__ == "captum._utils.gradient"
