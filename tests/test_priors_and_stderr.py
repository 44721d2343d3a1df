"""Structure priors (projections) and the reported standard errors."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import (
    ConstantOutputWarning,
    LREstimator,
    LRIntegratedGradients,
    attribute_with_stderr,
    samples_for_cosine,
)
from captum_lr.estimation.priors import Grid, GroupPrior, SharedChannels

Z = 5.5


def linear(w):
    def f(x):
        return (x * w).flatten(1).sum(1)

    return f


def test_grid_sweep_is_the_exact_projection():
    w = torch.randn(3, 8, 8, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    est = LREstimator(
        shared_noise=False, prior=Grid(4), n_samples=16
    )  # 16 cells: a coordinate sweep
    (g,) = est(linear(w), x)
    (p,) = est.project(x, w.expand_as(x))
    torch.testing.assert_close(g, p, rtol=1e-9, atol=1e-9)
    # the projection gives each coordinate its cell's mean partial derivative
    cell = w[:, :2, :2].mean()
    torch.testing.assert_close(g[0, :, :2, :2], cell.expand(3, 2, 2))
    assert est.queries == 2 * 16 * 2


def test_shared_channels_projection_and_cost():
    w = torch.randn(3, 5, 5, dtype=torch.float64)
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    est = LREstimator(shared_noise=False, prior=SharedChannels(), n_samples=25)
    (g,) = est(linear(w), x)
    torch.testing.assert_close(g[0], w.mean(0, keepdim=True).expand(3, 5, 5))
    assert est.queries_for(x) == est.queries == 25 * 2


@given(seed=st.integers(0, 500), n=st.integers(2, 30))
def test_prior_with_few_samples_is_unbiased_for_the_projection(seed, n):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 12, 12, generator=gen, dtype=torch.float64)
    rows = 200
    est = LREstimator(
        shared_noise=False, prior=Grid(6, share_channels=False), n_samples=n, seed=seed
    )
    x = torch.zeros(rows, 2, 12, 12, dtype=torch.float64)
    (g,) = est(linear(w), x)
    (p,) = est.project(x[:1], w.unsqueeze(0))
    mu, se = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - p[0]).abs() <= Z * se + 1e-9).all()


def test_group_prior_with_a_feature_mask_and_errors():
    mask = torch.tensor([[0, 0, 1, 1, 1, 2]])
    w = torch.arange(1.0, 7.0, dtype=torch.float64)
    (g,) = LREstimator(shared_noise=False, prior=GroupPrior(mask))(
        linear(w), torch.ones(1, 6, dtype=torch.float64)
    )
    torch.testing.assert_close(
        g[0], torch.tensor([1.5, 1.5, 4, 4, 4, 6.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="cannot be combined"):
        LREstimator(shared_noise=False, prior=Grid(2), block=2)
    with pytest.raises(TypeError, match="GroupPrior"):
        LREstimator(shared_noise=False, prior="grid")
    with pytest.raises(ValueError, match="exceed"):
        LREstimator(shared_noise=False, prior=Grid(9))(
            linear(torch.ones(3, 4, 4)), torch.ones(1, 3, 4, 4)
        )


@pytest.mark.parametrize(
    "design, fn",
    [
        ("gaussian", "linear"),
        ("gaussian", "quadratic"),
        ("orthogonal", "linear"),
        ("orthogonal", "quadratic"),
    ],
)
def test_standard_error_is_calibrated(design, fn):
    # The error observed across independent estimates (rows) matches the
    # reported standard error within 20 %.
    d, n, rows = 40, 12, 500
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    a = torch.diag(torch.linspace(0.5, 3, d, dtype=torch.float64))
    x0 = torch.randn(d, generator=gen, dtype=torch.float64)
    if fn == "linear":

        def f(x):
            return x @ w

        grad = w
    else:

        def f(x):
            return 0.5 * ((x @ a) * x).sum(1) + x @ w

        grad = a @ x0 + w
    est = LREstimator(
        shared_noise=False,
        n_samples=n,
        design=design,
        sigma=0.3,
        seed=1,
        track_stderr=True,
    )
    (g,) = est(f, x0.expand(rows, d).clone())
    (se,) = est.last_stderr
    observed = (g - grad).pow(2).mean().sqrt()
    reported = se.pow(2).mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2


def test_complete_orthogonal_set_reports_zero_error():
    d = 16
    est = LREstimator(
        shared_noise=False,
        n_samples=d,
        design="orthogonal",
        sigma=1.0,
        track_stderr=True,
    )
    est(
        linear(torch.randn(d, dtype=torch.float64)),
        torch.zeros(2, d, dtype=torch.float64),
    )
    assert (est.last_stderr[0] < 1e-6).all()


def test_single_sample_coordinates_report_infinite_error():
    est = LREstimator(
        shared_noise=False, block=2, n_samples=3, seed=0, track_stderr=True
    )
    with pytest.warns(UserWarning):
        est(linear(torch.ones(20)), torch.zeros(1, 20))
    (se,), (cov,) = est.last_stderr, est.last_coverage
    assert torch.isinf(se[cov < 2]).all() and torch.isfinite(se[cov >= 2]).all()


def test_sigma_below_the_models_resolution_warns():
    def quantised(x):
        return torch.floor(x * 4).sum(1)

    with pytest.warns(ConstantOutputWarning, match="raise sigma"):
        (g,) = LREstimator(shared_noise=False, n_samples=8)(
            quantised, torch.full((2, 30), 0.6)
        )
    assert (g == 0).all()


def test_attribute_with_stderr_is_calibrated_for_integrated_gradients():
    # Integrated gradients of a linear function: the exact attribution is
    # w * x; the replicate standard error must match the observed error.
    d, rows = 64, 200
    w = torch.randn(d, dtype=torch.float64)
    x = torch.randn(rows, d, dtype=torch.float64)
    est = LREstimator(
        shared_noise=False, n_samples=32, design="gaussian", sigma=0.1, seed=3
    )
    ig = LRIntegratedGradients(linear(w), estimator=est)
    attr, se = attribute_with_stderr(ig, x, replicates=8, n_steps=4)
    observed = (attr - w * x).pow(2).mean().sqrt()
    # the replicate std has 7 degrees of freedom: E[se^2] is unbiased
    reported = se.pow(2).mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2
    # n = 32 over 8 replicates: 3 samples + f(x) each, 32 <= 33 rows of one call
    assert est.queries == 4 * rows * (3 + 1) * 8


def test_attribute_with_stderr_errors():
    with pytest.raises(TypeError, match="LR attribution"):
        attribute_with_stderr(object(), torch.zeros(1, 2))
    ig = LRIntegratedGradients(linear(torch.ones(3)))
    with pytest.raises(ValueError, match="replicates"):
        attribute_with_stderr(ig, torch.zeros(1, 3), replicates=1)


@pytest.mark.parametrize("dim, cos", [(3072, 0.5), (37632, 0.3), (100, 1.0)])
def test_samples_for_cosine_reaches_the_target(dim, cos):
    n = samples_for_cosine(dim, cos)
    assert math.sqrt(n / dim) >= cos > math.sqrt((n - 1) / dim)
    m = samples_for_cosine(dim, min(cos, 0.9), design="gaussian")
    assert math.sqrt(m / (m + dim + 1)) >= min(cos, 0.9)


def test_completeness_correction_closes_the_gap_and_counts_its_rows():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(200, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )

    def f(x):
        with torch.no_grad():
            return net(x)[:, 0]

    x = torch.randn(3, 200)
    est = LREstimator(shared_noise=False, n_samples=20, seed=0)
    plain = LRIntegratedGradients(f, estimator=est)
    attr, delta = plain.attribute(x, n_steps=8, return_convergence_delta=True)
    assert delta.abs().min() > 1e-3  # a noisy estimate misses completeness
    # the convergence delta's 2 rows per example are counted with the rest
    assert plain.queries == 8 * 3 * (21 + 4) + 2 * 3  # 4 sigma-probe rows per row
    fixed = LRIntegratedGradients(
        f,
        estimator=LREstimator(shared_noise=False, n_samples=20, seed=0),
        completeness=True,
    )
    attr2, delta2 = fixed.attribute(x, n_steps=8, return_convergence_delta=True)
    assert delta2.abs().max() < 1e-5
    with torch.no_grad():
        gap = f(x) - f(torch.zeros_like(x))
    torch.testing.assert_close(attr2.sum(1), gap, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fixed.last_completeness_gap, delta)
    # the correction moves each coordinate in proportion to x^2
    change = attr2 - attr
    ratio = change / x.square()
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-3, atol=1e-7)
    with pytest.raises(ValueError, match="multiply_by_inputs"):
        LRIntegratedGradients(f, multiply_by_inputs=False, completeness=True)


def test_completeness_correction_works_inside_noise_tunnel():
    from captum.attr import NoiseTunnel

    w = torch.randn(50, dtype=torch.float64)

    def f(x):
        return torch.tanh(x @ w)

    ig = LRIntegratedGradients(
        f, estimator=LREstimator(shared_noise=False, n_samples=10), completeness=True
    )
    x = torch.randn(2, 50, dtype=torch.float64)
    out = NoiseTunnel(ig).attribute(x, nt_samples=3, stdevs=0.1, n_steps=5)
    assert out.shape == x.shape and ig.last_completeness_gap.shape == (6,)


def test_blur_baseline_matches_a_separable_gaussian_and_checks_input():
    from captum_lr import blur_baseline

    x = torch.zeros(1, 2, 15, 15, dtype=torch.float64)
    x[0, :, 7, 7] = 1.0  # an impulse away from the border: the kernel itself
    b = blur_baseline(x, kernel_size=5, sigma=1.0)
    k = torch.exp(-(torch.arange(-2.0, 3.0, dtype=torch.float64) ** 2) / 2)
    k = k / k.sum()
    torch.testing.assert_close(b[0, 0, 5:10, 5:10], torch.outer(k, k))
    torch.testing.assert_close(b.sum(), x.sum())
    const = torch.full((2, 3, 9, 9), 0.7)
    torch.testing.assert_close(blur_baseline(const, 5, 2.0), const)
    with pytest.raises(ValueError, match="N, C, H, W"):
        blur_baseline(torch.zeros(3, 9, 9))
    with pytest.raises(ValueError, match="odd"):
        blur_baseline(const, kernel_size=4)
