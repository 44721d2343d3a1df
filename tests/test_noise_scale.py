"""sigma="auto" shrinks the noise scale where the model is curved at it."""

import math

import torch

from captum_lr import LREstimator
from captum_lr.estimation.noise_scale import CURVED, PROBE_PAIRS, RESOLUTION


def curved(w, v, c):
    """A linear function plus a strong quadratic term along ``v`` (the
    gradient at 0 is ``w``; one-sided differences pick up c (v.u)^2 s^2)."""

    def f(x):
        flat = x.flatten(1)
        return flat @ w + c * (flat @ v) ** 2

    return f


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0))


def test_curvature_at_the_default_scale_shrinks_it_and_restores_the_accuracy():
    d, n = 2000, 400
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    v[0] = 0.0  # x.v = 0: the gradient at x is w
    x = torch.zeros(1, d, dtype=torch.float64)
    x[0, 0] = 1.0  # RMS 1/sqrt(d): sigma "auto" = 1e-4 x that
    sigma0 = 1e-4 / math.sqrt(d)
    # second difference 3x the first at the default scale: c s^2 d = 3 s sqrt(d)
    c = 3.0 / (sigma0 * math.sqrt(d))
    f = curved(w, v, c)
    limit = math.sqrt(n / d)  # the orthogonal design's linear limit
    fixed = LREstimator(n_samples=n, sigma=sigma0, seed=0, design="orthogonal")
    (g_fixed,) = fixed(f, x)
    grad = w + 2 * c * (x[0] @ v) * v
    auto = LREstimator(n_samples=n, seed=0, design="orthogonal")
    (g_auto,) = auto(f, x)
    assert float(auto.last_sigma_scale) < 0.1
    assert cosine(g_fixed, grad) < 0.5 * limit
    assert cosine(g_auto, grad) > 0.8 * limit
    assert auto.queries == n + 1 + PROBE_PAIRS


def test_a_linear_model_keeps_the_default_scale():
    d, n = 500, 100
    w = torch.randn(d, dtype=torch.float64)
    est = LREstimator(n_samples=n, seed=0)
    est(lambda z: z @ w, torch.randn(3, d, dtype=torch.float64))
    assert (est.last_sigma_scale == 1).all()
    assert (
        est.queries
        == 3 * (n + 1 + PROBE_PAIRS)
        == 3 * est.queries_for(torch.zeros(1, d))
    )


def test_curvature_and_rounding_are_balanced_where_they_conflict():
    """float32 outputs of size 1e4: curvature asks for a 50-fold shrink, the
    outputs' rounding allows 10-fold; the scale takes the geometric mean."""
    d, n = 1000, 64
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(d, generator=gen)
    v[d // 2 :] = 0.0
    x = torch.randn(2, d, generator=gen)
    x[:, : d // 2] = 0.0  # x.v = 0: the gradient at x is w
    x = x / x.pow(2).mean(1, keepdim=True).sqrt()  # RMS 1: sigma "auto" 1e-4
    sigma0 = 1e-4
    eps = torch.finfo(torch.float32).eps
    first = RESOLUTION * eps * 1e4 / 0.1  # D1 rms: rounding allows m >= 0.1
    w = torch.randn(d, generator=gen)
    w = w / w.norm() * first / sigma0
    c = 1.0 / (sigma0 * math.sqrt(d)) * first / (sigma0 * math.sqrt(d))

    def f(z):
        return 1e4 + z @ w + c * (z @ v) ** 2

    est = LREstimator(n_samples=n, seed=0, design="orthogonal")
    est(f, x)
    scale = est.last_sigma_scale
    assert ((scale > 0.02) & (scale < 0.1)).all(), scale


def test_outputs_that_barely_move_get_a_larger_scale():
    d, n = 500, 64
    w = torch.full((d,), 1e-3)
    x = torch.ones(1, d)

    def f(z):
        return 1e3 + z @ w  # float32: D1 = 1e-4 |w| ~ 3e-6, below one step

    est = LREstimator(n_samples=n, seed=0, design="orthogonal")
    est(f, x)
    assert float(est.last_sigma_scale) > 10


def test_fixed_sigma_and_sweeps_send_no_probes():
    x = torch.randn(2, 300)
    assert LREstimator(n_samples=100, sigma=0.01).queries_for(x) == 2 * 101
    assert LREstimator(n_samples=300).queries_for(x) == 2 * 600  # a sweep
    anti = LREstimator(n_samples=100, antithetic=True)
    assert anti.queries_for(x) == 2 * 200
    assert CURVED > 0
