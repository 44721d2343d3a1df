"""Every LR class against its Captum autograd twin, on models without autograd.

Rows here have at most n_samples coordinates, so the default estimator sweeps
coordinates with central differences: exact up to O(sigma^2). With sigma = 1e-2
times the inputs' RMS and float64 models, that is a relative error ~1e-4.
"""

import math

import numpy as np
import pytest
import torch
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from captum.attr import visualization as viz
from captum.testing.helpers.basic_models import BasicModel_MultiLayer
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import (
    LREstimator,
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.estimation.estimator import AUTO_SIGMA
from captum_lr.estimation.noise_scale import PROBE_PAIRS
from captum_lr.estimation.rows import COORDINATE_FLOOR

RTOL = 2e-3


def close(a, b, rtol=RTOL):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        scale = y.abs().max().clamp_min(1e-12)
        assert (x - y).abs().max() <= rtol * scale, ((x - y).abs().max(), scale)


class TwoInputNet(torch.nn.Module):
    """Two tensor inputs and an extra (tensor, scalar) argument."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(6, 8)
        self.b = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x1, x2, extra, scale):
        h = torch.tanh(self.a(x1) + self.b(x2.flatten(1)) + extra)
        return self.out(h) * scale


def no_autograd(module):
    def fn(*args):
        with torch.no_grad():
            return module(*args)

    return fn


def numpy_only(module):
    """A forward that goes through numpy: no autograd graph can exist."""

    def fn(x):
        with torch.no_grad():
            out = module(torch.from_numpy(np.asarray(x.detach().cpu().numpy())))
        return torch.from_numpy(out.numpy().copy())

    return fn


@pytest.fixture
def mlp12():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)
    ).double()


def test_done_when_12_feature_mlp_integrated_gradients(mlp12):
    x = torch.randn(8, 12, dtype=torch.float64)
    ref = IntegratedGradients(mlp12).attribute(x, target=2)
    lr = LRIntegratedGradients(no_autograd(mlp12)).attribute(x, target=2)
    cos = torch.nn.functional.cosine_similarity(lr.flatten(), ref.flatten(), 0)
    rel = (lr - ref).abs().max() / ref.abs().max()
    assert cos >= 0.999
    assert rel <= 1e-3


def test_done_when_small_cnn_saliency():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 64, 5),
    )
    x = torch.randn(2, 3, 32, 32)
    d = 3072
    ref = Saliency(cnn).attribute(x.clone().requires_grad_(), target=1, abs=False)
    est = LREstimator(n_samples=d, seed=0, max_batch_size=512)
    full = LRSaliency(no_autograd(cnn), est).attribute(x, target=1, abs=False)
    cos = torch.nn.functional.cosine_similarity(full.flatten(1), ref.flatten(1), 1)
    assert (cos >= 0.99).all()
    n = 1000
    est = LREstimator(n_samples=n, seed=0, max_batch_size=512)
    part = LRSaliency(no_autograd(cnn), est).attribute(x, target=1, abs=False)
    cos = torch.nn.functional.cosine_similarity(part.flatten(1), ref.flatten(1), 1)
    assert (cos >= 0.95 * math.sqrt(n / (n + d + 1))).all()
    assert est.queries == 2 * est.queries_for(x[:1]) == 2 * (n + 1 + PROBE_PAIRS)


@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_and_input_x_gradient(mlp12, abs_):
    x = torch.randn(5, 12, dtype=torch.float64)
    ref = Saliency(mlp12).attribute(x.clone().requires_grad_(), target=0, abs=abs_)
    close(LRSaliency(numpy_only(mlp12)).attribute(x, target=0, abs=abs_), ref)
    ref = InputXGradient(mlp12).attribute(x.clone().requires_grad_(), target=3)
    close(LRInputXGradient(no_autograd(mlp12)).attribute(x, target=3), ref)


@pytest.mark.parametrize("internal_batch_size", [None, 7])
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_integrated_gradients_tuple_inputs_args_targets(
    internal_batch_size, multiply_by_inputs
):
    net = TwoInputNet().double()
    x1 = torch.randn(4, 6, dtype=torch.float64)
    x2 = torch.randn(4, 2, 2, dtype=torch.float64)
    extra = torch.randn(4, 8, dtype=torch.float64)
    kwargs = dict(
        additional_forward_args=(extra, 1.5),
        n_steps=10,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    for target in ([0, 2, 1, 1], torch.tensor([2, 0, 0, 1]), 1):
        ref, ref_delta = IntegratedGradients(
            net, multiply_by_inputs=multiply_by_inputs
        ).attribute((x1, x2), target=target, **kwargs)
        lr_ig = LRIntegratedGradients(
            no_autograd(net), multiply_by_inputs=multiply_by_inputs
        )
        out, delta = lr_ig.attribute((x1, x2), target=target, **kwargs)
        close(out, ref)
        if multiply_by_inputs:
            scale = sum(r.abs().sum(1 if r.dim() == 2 else (1, 2)) for r in ref)
            assert ((delta - ref_delta).abs() <= RTOL * scale).all()
        assert lr_ig.queries > 0


def test_integrated_gradients_on_captum_basic_model():
    net = BasicModel_MultiLayer().double()
    x = torch.randn(6, 3, dtype=torch.float64)
    ref = IntegratedGradients(net).attribute(x, target=1, n_steps=20)
    close(
        LRIntegratedGradients(no_autograd(net)).attribute(x, target=1, n_steps=20), ref
    )


def test_gradient_shap_matches_with_the_same_random_draws(mlp12):
    x = torch.randn(4, 12, dtype=torch.float64)
    baselines = torch.randn(10, 12, dtype=torch.float64)
    kw = dict(n_samples=6, stdevs=0.1, target=1, return_convergence_delta=True)
    torch.manual_seed(3)
    np.random.seed(3)
    ref, ref_delta = GradientShap(mlp12).attribute(x, baselines, **kw)
    torch.manual_seed(3)
    np.random.seed(3)
    out, delta = LRGradientShap(no_autograd(mlp12)).attribute(x, baselines, **kw)
    close(out, ref)
    assert delta.shape == ref_delta.shape


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_all_types(mlp12, nt_type):
    x = torch.randn(3, 12, dtype=torch.float64)
    kw = dict(nt_type=nt_type, nt_samples=4, stdevs=0.2, target=2, n_steps=8)
    torch.manual_seed(5)
    ref = NoiseTunnel(IntegratedGradients(mlp12)).attribute(x, **kw)
    torch.manual_seed(5)
    out = NoiseTunnel(LRIntegratedGradients(no_autograd(mlp12))).attribute(x, **kw)
    close(out, ref, rtol=5e-3 if nt_type == "vargrad" else RTOL)
    torch.manual_seed(5)
    sal = NoiseTunnel(LRSaliency(no_autograd(mlp12))).attribute(
        x, nt_type=nt_type, nt_samples=4, stdevs=0.2, target=2
    )
    assert sal.shape == x.shape and torch.isfinite(sal).all()


def test_captum_integrated_gradients_with_estimator_as_gradient_func(mlp12):
    x = torch.randn(3, 12, dtype=torch.float64)
    ref = IntegratedGradients(mlp12).attribute(x, target=0)
    ig = IntegratedGradients(no_autograd(mlp12))
    ig.gradient_func = LREstimator(seed=0)
    close(ig.attribute(x, target=0), ref)
    assert ig.gradient_func.queries > 0


def test_stock_integrated_gradients_fails_without_autograd(mlp12):
    # the failure this package removes
    with pytest.raises(RuntimeError, match="does not require grad"):
        IntegratedGradients(no_autograd(mlp12)).attribute(
            torch.randn(2, 12, dtype=torch.float64), target=0
        )


def test_visualization_accepts_lr_maps():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 2)
    )
    x = torch.randn(1, 3, 8, 8)
    attr = LRIntegratedGradients(no_autograd(cnn)).attribute(x, target=0, n_steps=4)
    fig, _ = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(),
        x[0].permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="all",
        use_pyplot=False,
    )
    assert fig is not None


@given(
    n_inputs=st.integers(1, 3),
    batch=st.integers(1, 4),
    width=st.integers(1, 6),
    max_batch_size=st.integers(1, 40),
    target_kind=st.sampled_from(["int", "list", "tensor", "tuple"]),
    antithetic=st.booleans(),
)
def test_estimator_matches_autograd_on_random_shapes(
    n_inputs, batch, width, max_batch_size, target_kind, antithetic
):
    torch.manual_seed(n_inputs * 100 + batch * 10 + width)
    shapes = [(width,), (2, width), (width, 1, 2)][:n_inputs]
    weights = [torch.randn(math.prod(s), 3, dtype=torch.float64) for s in shapes]

    def f(*xs):
        z = sum(x.flatten(1) @ w for x, w in zip(xs, weights))
        return torch.tanh(z) if target_kind != "tuple" else torch.tanh(z).unsqueeze(1)

    xs = tuple(torch.randn(batch, *s, dtype=torch.float64) for s in shapes)
    target = {
        "int": 1,
        "list": [i % 3 for i in range(batch)],
        "tensor": torch.arange(batch) % 3,
        "tuple": (0, 2),
    }[target_kind]
    est = LREstimator(max_batch_size=max_batch_size, antithetic=antithetic, seed=0)
    seen = []

    def counting(*a):
        seen.append(a[0].shape[0])
        return f(*a)

    got = est(counting, xs, target)
    xr = tuple(x.clone().requires_grad_() for x in xs)
    out = f(*xr)
    if target_kind == "tuple":
        sel = out[:, 0, 2]
    elif target_kind == "int":
        sel = out[:, 1]
    else:
        sel = out.gather(1, torch.as_tensor(target).reshape(-1, 1))
    exact = torch.autograd.grad(sel.sum(), xr)
    # Finite-difference error along coordinate j of tanh(x.W): one-sided
    # sigma/2 |W_jk|^2 max|tanh''| (0.77), central sigma^2/6 |W_jk|^3 max|tanh'''|
    # (2), with sigma = AUTO_SIGMA * max(|x_j|, COORDINATE_FLOOR * RMS of the
    # row's input tensor) (sigma="auto" for sweeps).
    for x, w, g, e in zip(xs, weights, got, exact):
        rms = x.pow(2).flatten(1).mean(1).sqrt().reshape(-1, *([1] * (x.dim() - 1)))
        step = torch.maximum(x.abs(), COORDINATE_FLOOR * rms)
        sigma = AUTO_SIGMA["coordinate"] * step
        wmax = w.abs().max(1).values.reshape(x.shape[1:])
        if antithetic:
            bound = sigma**2 / 6 * wmax**3 * 2.0
        else:
            bound = sigma / 2 * wmax**2 * 0.77
        assert g.shape == e.shape
        assert ((g - e).abs() <= bound + 1e-9).all()
    assert max(seen) <= max_batch_size
    assert sum(seen) == est.queries == est.queries_for(xs)


def test_sweep_step_follows_each_features_scale():
    # Features of scale 1 next to features of scale 300 (a fare next to 0/1
    # columns): each coordinate's central difference is stepped by its own
    # size, so its error stays within sigma_j^2 / 6 * max|d3 f / dx_j^3| for
    # sigma_j = AUTO_SIGMA * max(|x_j|, COORDINATE_FLOOR * RMS).
    torch.manual_seed(0)
    small = torch.randint(0, 2, (6, 4)).double()
    large = torch.rand(6, 2, dtype=torch.float64) * 300
    x = torch.cat([small, large], 1)
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 100.0, 100.0], dtype=torch.float64)

    def f(z):
        return torch.sin(3 * z / scale).sum(1)

    got = LREstimator(seed=0)(f, (x,))[0]
    exact = 3 / scale * torch.cos(3 * x / scale)
    rms = x.pow(2).mean(1, keepdim=True).sqrt()
    sigma = AUTO_SIGMA["coordinate"] * torch.maximum(x.abs(), COORDINATE_FLOOR * rms)
    bound = sigma**2 / 6 * (3 / scale) ** 3
    assert ((got - exact).abs() <= bound + 1e-12).all()


def test_lr_classes_do_not_warn_about_requires_grad(mlp12):
    import warnings

    x = torch.randn(2, 12, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LRSaliency(no_autograd(mlp12)).attribute(x, target=0)
        LRInputXGradient(no_autograd(mlp12)).attribute(x, target=0)
        NoiseTunnel(LRSaliency(no_autograd(mlp12))).attribute(x, nt_samples=2, target=0)
