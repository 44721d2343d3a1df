"""Structure priors (projections) and the reported standard errors."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import ConstantOutputWarning, LREstimator
from captum_lr.priors import Grid, GroupPrior, SharedChannels

Z = 5.5


def linear(w):
    def f(x):
        return (x * w).flatten(1).sum(1)

    return f


def test_grid_sweep_is_the_exact_projection():
    w = torch.randn(3, 8, 8, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    est = LREstimator(prior=Grid(4), n_samples=16)  # 16 cells: a coordinate sweep
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
    est = LREstimator(prior=SharedChannels(), n_samples=25)
    (g,) = est(linear(w), x)
    torch.testing.assert_close(g[0], w.mean(0, keepdim=True).expand(3, 5, 5))
    assert est.queries_for(x) == est.queries == 25 * 2


@given(seed=st.integers(0, 500), n=st.integers(2, 30))
def test_prior_with_few_samples_is_unbiased_for_the_projection(seed, n):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 12, 12, generator=gen, dtype=torch.float64)
    rows = 200
    est = LREstimator(prior=Grid(6, share_channels=False), n_samples=n, seed=seed)
    x = torch.zeros(rows, 2, 12, 12, dtype=torch.float64)
    (g,) = est(linear(w), x)
    (p,) = est.project(x[:1], w.unsqueeze(0))
    mu, se = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - p[0]).abs() <= Z * se + 1e-9).all()


def test_group_prior_with_a_feature_mask_and_errors():
    mask = torch.tensor([[0, 0, 1, 1, 1, 2]])
    w = torch.arange(1.0, 7.0, dtype=torch.float64)
    (g,) = LREstimator(prior=GroupPrior(mask))(
        linear(w), torch.ones(1, 6, dtype=torch.float64)
    )
    torch.testing.assert_close(
        g[0], torch.tensor([1.5, 1.5, 4, 4, 4, 6.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="cannot be combined"):
        LREstimator(prior=Grid(2), block=2)
    with pytest.raises(TypeError, match="GroupPrior"):
        LREstimator(prior="grid")
    with pytest.raises(ValueError, match="exceed"):
        LREstimator(prior=Grid(9))(linear(torch.ones(3, 4, 4)), torch.ones(1, 3, 4, 4))


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
    est = LREstimator(n_samples=n, design=design, sigma=0.3, seed=1, track_stderr=True)
    (g,) = est(f, x0.expand(rows, d).clone())
    (se,) = est.last_stderr
    observed = (g - grad).pow(2).mean().sqrt()
    reported = se.pow(2).mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2


def test_complete_orthogonal_set_reports_zero_error():
    d = 16
    est = LREstimator(n_samples=d, design="orthogonal", sigma=1.0, track_stderr=True)
    est(
        linear(torch.randn(d, dtype=torch.float64)),
        torch.zeros(2, d, dtype=torch.float64),
    )
    assert (est.last_stderr[0] < 1e-6).all()


def test_single_sample_coordinates_report_infinite_error():
    est = LREstimator(block=2, n_samples=3, seed=0, track_stderr=True)
    with pytest.warns(UserWarning):
        est(linear(torch.ones(20)), torch.zeros(1, 20))
    (se,), (cov,) = est.last_stderr, est.last_coverage
    assert torch.isinf(se[cov < 2]).all() and torch.isfinite(se[cov >= 2]).all()


def test_sigma_below_the_models_resolution_warns():
    def quantised(x):
        return torch.floor(x * 4).sum(1)

    with pytest.warns(ConstantOutputWarning, match="raise sigma"):
        (g,) = LREstimator(n_samples=8)(quantised, torch.full((2, 30), 0.6))
    assert (g == 0).all()
