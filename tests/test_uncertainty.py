"""attribute_with_stderr keeps the method: one design for every replicate, at
most the rows of one call."""

import math

import pytest
import torch
from captum.attr import NoiseTunnel
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr import (
    LREstimator,
    LRIntegratedGradients,
    LRSaliency,
    attribute_with_stderr,
)


def smooth(w):
    # central differences err by sigma^2 / 6 times the third derivative
    def f(x):
        return torch.sin(0.3 * (x @ w)) + 0.1 * (x @ w) ** 2

    return f


def exact_saliency(w, x):
    z = x @ w
    return (0.3 * torch.cos(0.3 * z) + 0.2 * z).unsqueeze(1) * w


@settings(max_examples=10, deadline=None)
@given(d=st.integers(2, 100), extra=st.integers(0, 100), replicates=st.integers(2, 9))
def test_an_exact_sweep_stays_exact_and_costs_one_call(d, extra, replicates):
    w = torch.linspace(-1, 1, d, dtype=torch.float64)
    x = torch.randn(
        3, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)
    )
    est = LREstimator(n_samples=d + extra, seed=0)
    sal = LRSaliency(smooth(w), estimator=est)
    (one,) = (sal.attribute(x, abs=False),)
    rows_one_call = est.queries
    est.queries = 0
    attr, se = attribute_with_stderr(sal, x, replicates=replicates, abs=False)
    assert est.queries == rows_one_call == 3 * 2 * d  # central differences
    torch.testing.assert_close(attr, one)
    exact = exact_saliency(w, x)
    assert ((attr - exact).norm() / exact.norm()) <= 1e-5
    assert (se == 0).all()  # no sampling error in a sweep


def test_previously_the_split_turned_a_sweep_into_noise():
    """d = 100, n = 200: 200 rows of relative error ~1e-7, not 136 rows of
    relative error ~0.7 (what dividing n_samples by 8 under "auto" gave)."""
    d = 100
    w = torch.linspace(-1, 1, d, dtype=torch.float64)
    x = torch.randn(1, d, dtype=torch.float64)
    est = LREstimator(n_samples=200, seed=0)
    sal = LRSaliency(smooth(w), estimator=est)
    attr, _ = attribute_with_stderr(sal, x, abs=False)
    exact = exact_saliency(w, x)
    assert est.queries == 200
    assert float((attr - exact).norm() / exact.norm()) < 1e-5


def test_noise_tunnel_around_a_sweep_splits_its_samples():
    d = 10
    w = torch.linspace(-1, 1, d, dtype=torch.float64)
    x = torch.randn(2, d, dtype=torch.float64)
    est = LREstimator(n_samples=64, seed=0)
    nt = NoiseTunnel(LRSaliency(smooth(w), estimator=est))
    kw = dict(nt_type="smoothgrad", nt_samples=12, stdevs=0.3, abs=False)
    nt.attribute(x, **kw)
    one_call = est.queries
    est.queries = 0
    torch.manual_seed(0)
    attr, se = attribute_with_stderr(nt, x, replicates=4, **kw)
    assert est.queries == one_call == 2 * 12 * 2 * d
    assert attr.shape == x.shape and (se > 0).all() and torch.isfinite(se).all()
    with pytest.raises(ValueError, match="vargrad"):
        attribute_with_stderr(nt, x, **{**kw, "nt_type": "vargrad"})


def test_a_random_design_keeps_its_design_and_budget():
    """3 x 12 x 12 images, n = 128: every replicate uses the channel strata
    (the design of one call) and the replicates spend at most one call's rows."""
    w = torch.randn(3, 12, 12, dtype=torch.float64)

    def f(x):
        return (x * w).flatten(1).sum(1)

    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    est = LREstimator(n_samples=128, seed=0)
    ig = LRIntegratedGradients(f, estimator=est)
    ig.attribute(x, n_steps=4)
    one_call = est.queries
    est.queries = 0
    attr, se = attribute_with_stderr(ig, x, replicates=8, n_steps=4)
    assert est.queries <= one_call
    assert est.last_design == "orthogonal-channels"
    assert torch.isfinite(se).all() and (se > 0).any()
    with pytest.raises(ValueError, match="too small to split"):
        small = LRIntegratedGradients(f, estimator=LREstimator(n_samples=9))
        attribute_with_stderr(small, x, replicates=8, n_steps=2)


def test_replicate_stderr_matches_the_error_of_an_orthogonal_design():
    d, rows = 300, 300
    w = torch.randn(d, dtype=torch.float64)
    x = torch.randn(rows, d, dtype=torch.float64)
    est = LREstimator(n_samples=120, sigma=1e-3, seed=1, shared_noise=False)
    sal = LRSaliency(lambda z: z @ w, estimator=est)
    attr, se = attribute_with_stderr(sal, x, replicates=6, abs=False)
    observed = (attr - w).pow(2).mean().sqrt()
    reported = se.pow(2).mean().sqrt()
    # replicate std with 5 degrees of freedom, averaged over 90,000 values
    assert 0.85 <= float(observed / reported) <= 1.15
    assert math.isfinite(float(reported))
