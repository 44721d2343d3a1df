"""The LR input classes check their arguments before Captum and the model see
them: TypeError for the wrong kind of object, ValueError for wrong shapes,
counts, devices and values; messages name the argument, give shapes (never a
tensor's values) and say what to change. Nothing is sent to the model."""

import math
import re

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
    estimate_queries,
)

CLASSES = [LRSaliency, LRInputXGradient, LRIntegratedGradients, LRGradientShap]
W = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


class Model:
    """A forward function without autograd that counts the rows it is asked."""

    def __init__(self, weight=W):
        self.weight = weight
        self.rows = 0

    def __call__(self, x, *extra):
        self.rows += x.shape[0]
        with torch.no_grad():
            out = x @ self.weight.to(x.dtype)
            for e in extra:
                out = out + e.flatten(1).sum(1, keepdim=True)
            return out


def attribute(cls, model, inputs, **kwargs):
    """One call of any LR input class, with baselines where GradientShap needs
    them (unless the test gives its own)."""
    if cls is LRGradientShap and "baselines" not in kwargs:
        kwargs["baselines"] = torch.zeros(3, 4)
    return cls(model).attribute(inputs, target=0, **kwargs)


def raises(exc, fn, *match):
    """Runs fn, expects exc, checks every string of match is in the message and
    that the message prints no tensor; returns the message."""
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    assert type(info.value) is exc, type(info.value)
    assert re.search(r"(^|[\s:=])tensor\(", message) is None, message  # no values
    for m in match:
        assert m in message, (m, message)
    return message


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "bad, expect",
    [
        ([[0.1, 0.2, 0.3, 0.4]], "torch.as_tensor"),
        (np.ones((2, 4), dtype=np.float32), "NumPy array of shape (2, 4)"),
        ([torch.ones(2, 4)], "tuple(inputs)"),
        (3.0, "pass a tensor"),
        ((torch.ones(2, 4), [1.0, 2.0]), "inputs[1] is a list"),
    ],
)
def test_inputs_of_the_wrong_kind_raise_type_error(cls, bad, expect):
    model = Model()
    raises(TypeError, lambda: attribute(cls, model, bad), expect)
    assert model.rows == 0


@pytest.mark.parametrize("cls", CLASSES)
def test_integer_and_empty_inputs_raise_value_error(cls):
    model = Model()
    raises(
        ValueError,
        lambda: attribute(cls, model, torch.ones(2, 4, dtype=torch.long)),
        "torch.int64",
        ".float()",
    )
    raises(ValueError, lambda: attribute(cls, model, ()), "empty tuple")
    assert model.rows == 0


def test_integer_inputs_raise_before_captums_dtype_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="int64"):
            LRSaliency(Model()).attribute(torch.ones(2, 4, dtype=torch.long), target=0)


@pytest.mark.parametrize("cls", CLASSES)
def test_rows_of_tuple_inputs_are_checked(cls):
    model = Model()
    x = torch.randn(2, 4)
    kw = {"baselines": (torch.zeros(3, 4), 0.0)} if cls is LRGradientShap else {}
    raises(
        ValueError,
        lambda: cls(model).attribute(
            (x, torch.randn(3, 2)), target=0, additional_forward_args=None, **kw
        ),
        "inputs[1] has shape (3, 2)",
        "(2, 4)",
    )
    assert model.rows == 0


def attribute_target(cls, model, x, target):
    kwargs = {"baselines": torch.zeros(3, 4)} if cls is LRGradientShap else {}
    return cls(model).attribute(x, target=target, **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
def test_target_per_row_is_checked_before_captum_expands_it(cls):
    # IntegratedGradients and GradientShap repeat the target n_steps /
    # n_samples times: the message must count the user's rows, not those.
    model = Model()
    raises(
        ValueError,
        lambda: attribute_target(cls, model, torch.randn(2, 4), torch.arange(3)),
        "target has 3 entries but the inputs have 2 rows",
    )


# ---------------------------------------------------------------- baselines


@pytest.mark.parametrize(
    "baselines, expect",
    [
        (torch.zeros(3, 4), "baselines has shape (3, 4)"),
        (torch.zeros(2, 5), "baselines has shape (2, 5)"),
        (torch.zeros(1, 5), "baselines has shape (1, 5)"),
        (torch.zeros(4), "baselines has shape (4,)"),
    ],
)
def test_integrated_gradients_baselines_of_the_wrong_shape(baselines, expect):
    model = Model()
    x = torch.randn(2, 4)
    message = raises(
        ValueError,
        lambda: LRIntegratedGradients(model).attribute(x, baselines, target=0),
        expect,
        "inputs has shape (2, 4)",
        "(1, 4)",
    )
    assert len(message) < 300
    assert model.rows == 0


def test_integrated_gradients_baseline_kinds_and_counts():
    model = Model()
    x = torch.randn(2, 4)
    ig = LRIntegratedGradients(model)
    raises(TypeError, lambda: ig.attribute(x, "zero", target=0), "baselines is a str")
    raises(TypeError, lambda: ig.attribute(x, [0.0], target=0), "tuple(baselines)")
    raises(
        ValueError, lambda: ig.attribute(x, (0.0, 0.0), target=0), "tuple of 2", "1 "
    )
    raises(
        ValueError,
        lambda: ig.attribute((x, torch.randn(2, 2, 2)), 0.0, target=0),
        "one baseline per input tensor",
    )
    raises(ValueError, lambda: ig.attribute(x, float("nan"), target=0), "nan")
    raises(ValueError, lambda: ig.attribute(x, torch.tensor(math.inf), target=0))
    assert model.rows == 0


def test_integrated_gradients_accepts_every_baseline_captum_accepts():
    model = Model()
    x = torch.randn(2, 4, dtype=torch.float64)
    ig = LRIntegratedGradients(model)
    ref = ig.attribute(x, torch.full((2, 4), 0.5, dtype=torch.float64), target=1)
    for baselines in (
        0.5,
        torch.tensor(0.5),  # Captum itself fails on 0-dim tensors (IndexError)
        torch.full((1, 4), 0.5, dtype=torch.float64),
        (0.5,),
    ):
        out = ig.attribute(x, baselines, target=1, n_steps=50)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, True, "8"])
def test_integrated_gradients_n_steps(n_steps):
    model = Model()
    ig = LRIntegratedGradients(model)
    exc = ValueError if type(n_steps) is int else TypeError
    raises(exc, lambda: ig.attribute(torch.randn(2, 4), n_steps=n_steps), "n_steps")
    raises(
        ValueError,
        lambda: ig.attribute(torch.randn(2, 4), target=0, method="simpson"),
        "gausslegendre",
        "'simpson'",
    )
    assert model.rows == 0


def test_gradient_shap_needs_baselines():
    model = Model()
    gs = LRGradientShap(model)
    x = torch.randn(2, 4)
    for call in (
        lambda: gs.attribute(x, target=0),
        lambda: gs.attribute(x, baselines=None, target=0),
    ):
        raises(ValueError, call, "GradientShap needs baselines", "torch.zeros(1, 4)")
    raises(TypeError, lambda: gs.attribute(x, 0.0, target=0), "(k, 4)")
    raises(ValueError, lambda: gs.attribute(x, torch.zeros(5, 3)), "shape (5, 3)")
    raises(ValueError, lambda: gs.attribute(x, torch.zeros(0, 4)), "k >= 1")
    raises(ValueError, lambda: gs.attribute(x, torch.zeros(4)), "shape (4,)")
    raises(ValueError, lambda: gs.attribute(x, lambda: torch.zeros(2, 5)), "(2, 5)")
    raises(
        ValueError,
        lambda: gs.attribute(x, torch.zeros(3, 4), n_samples=0),
        "n_samples must be at least 1",
    )
    raises(ValueError, lambda: gs.attribute(x, torch.zeros(3, 4), stdevs=-1.0))
    raises(
        ValueError,
        lambda: gs.attribute(x, torch.zeros(3, 4), stdevs=(0.1, 0.2)),
        "stdevs is a tuple of 2",
    )
    assert model.rows == 0


def test_gradient_shap_accepts_what_captum_accepts():
    model = Model()
    gs = LRGradientShap(model)
    x = torch.randn(2, 4)
    x2 = torch.randn(2, 3)
    for baselines in (
        torch.zeros(3, 4),
        lambda: torch.zeros(3, 4),
        lambda inputs: torch.zeros_like(inputs),
    ):
        assert gs.attribute(x, baselines, target=0).shape == (2, 4)
    out = gs.attribute((x, x2), (torch.zeros(3, 4), 0.0), stdevs=(0.1, 0.0), target=0)
    assert [o.shape for o in out] == [(2, 4), (2, 3)]


# ---------------------------------------------------------- non-finite values


@pytest.mark.parametrize("cls", CLASSES)
def test_nan_in_the_inputs_is_not_blamed_on_the_model(cls):
    model = Model()
    x = torch.tensor([[float("nan"), 1.0, 0.0, 0.0]])
    message = raises(
        ValueError,
        lambda: attribute(cls, model, x),
        "inputs (shape (1, 4)) holds 1 non-finite value (1 NaN, 0 Inf) in row 0",
        "nan_to_num",
    )
    assert "forward function" not in message and "sigma" not in message
    assert model.rows == 0


@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 5),
    data=st.data(),
)
def test_non_finite_values_are_counted_per_tensor(rows, cols, data):
    n = rows * cols
    where = data.draw(st.lists(st.integers(0, n - 1), min_size=1, unique=True))
    values = data.draw(
        st.lists(
            st.sampled_from([math.nan, math.inf, -math.inf]),
            min_size=len(where),
            max_size=len(where),
        )
    )
    x = torch.randn(rows, cols)
    second = torch.randn(rows, cols)
    flat = second.view(-1)
    for i, v in zip(where, values):
        flat[i] = v
    n_nan = sum(math.isnan(v) for v in values)
    bad_rows = sorted({i // cols for i in where})
    model = Model(torch.randn(cols, 3))

    def f(a, b):
        return model(a + b)

    with pytest.raises(ValueError) as info:
        LRSaliency(f).attribute((x, second), target=0)
    message = str(info.value)
    word = "value" if len(where) == 1 else "values"
    assert message.startswith(
        f"inputs[1] (shape ({rows}, {cols})) holds {len(where)} non-finite {word} "
        f"({n_nan} NaN, {len(where) - n_nan} Inf) in "
    )
    assert ", ".join(str(r) for r in bad_rows[:5]) in message
    assert model.rows == 0


def test_non_finite_baselines():
    model = Model()
    x = torch.randn(2, 4)
    bad = torch.zeros(2, 4)
    bad[1, 2] = math.inf
    raises(
        ValueError,
        lambda: LRIntegratedGradients(model).attribute(x, bad, target=0),
        "baselines (shape (2, 4)) holds 1 non-finite value (0 NaN, 1 Inf) in row 1",
    )
    raises(
        ValueError,
        lambda: LRGradientShap(model).attribute(x, bad, target=0),
        "baselines (shape (2, 4))",
    )
    assert model.rows == 0


def test_nan_through_noise_tunnel_names_the_inputs():
    x = torch.tensor([[float("nan"), 1.0, 0.0, 0.0]])
    nt = NoiseTunnel(LRSaliency(Model()))
    raises(
        ValueError,
        lambda: nt.attribute(x, nt_samples=2, target=0),
        "inputs (shape (2, 4)) holds 2 non-finite values (2 NaN, 0 Inf)",
    )


# -------------------------------------------------------------- meta tensors


@pytest.mark.parametrize("cls", CLASSES)
def test_meta_tensors_are_refused_with_a_reason(cls):
    x = torch.zeros(2, 4, device="meta")
    meta = torch.zeros(3, 4, device="meta")
    kw = {"baselines": meta} if cls is LRGradientShap else {}
    raises(
        ValueError,
        lambda: cls(Model()).attribute(x, target=0, **kw),
        "'meta' device",
        "no values",
        "estimate_queries",
    )


def test_meta_baselines_are_refused():
    x = torch.zeros(2, 4)
    meta = torch.zeros(2, 4, device="meta")
    for call in (
        lambda: LRIntegratedGradients(Model()).attribute(x, meta, target=0),
        lambda: LRGradientShap(Model()).attribute(x, meta, target=0),
    ):
        raises(ValueError, call, "baselines is on the 'meta' device")


def test_estimate_queries_runs_the_checks_too():
    ig = LRIntegratedGradients(Model())
    with pytest.raises(ValueError, match="n_steps"):
        estimate_queries(ig, torch.randn(2, 4), target=0, n_steps=0)
    # and the advice given for meta tensors works: same shape, real zeros
    assert estimate_queries(ig, torch.zeros(2, 4), target=0, n_steps=3) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_baselines_on_another_device_than_the_inputs():
    x = torch.randn(2, 4, device="cuda")
    model = Model(W.cuda())
    for call in (
        lambda: LRIntegratedGradients(model).attribute(x, torch.zeros(2, 4), target=0),
        lambda: LRGradientShap(model).attribute(x, torch.zeros(3, 4), target=0),
    ):
        raises(ValueError, call, "baselines is on cpu but inputs on cuda", ".to(")
    bad = x.clone()
    bad[0, 0] = math.nan
    raises(ValueError, lambda: LRSaliency(model).attribute(bad, target=0), "in row 0")
    # a 0-dim CPU tensor is a number, as for torch's own arithmetic
    out = LRIntegratedGradients(model).attribute(x, torch.tensor(0.0), target=0)
    assert out.device == x.device
    assert model.rows > 0


def test_riemann_methods_need_two_steps_before_captums_assertion():
    ig = LRIntegratedGradients(lambda z: z.sum(1))
    with pytest.raises(ValueError, match="needs n_steps >= 2"):
        ig.attribute(torch.ones(1, 3), n_steps=1, method="riemann_left")
