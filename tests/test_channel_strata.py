"""The channel-stratified orthogonal design, the default for (C, H, W) images.

Each batch row is an independent estimate (its own directions), so one call on
B copies of a point gives B estimates; tolerances are z-scores on their spread.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import LREstimator

Z = 5.5  # two-sided z bound: false alarm < 4e-8 per check


def linear(w):
    def f(*xs):
        return sum((x * wi).flatten(1).sum(1) for x, wi in zip(xs, w))

    return f


def copies(x, rows):
    return x.unsqueeze(0).expand(rows, *x.shape).clone()


def channel_mean(g):
    return g.mean(dim=-3, keepdim=True).expand_as(g)


def test_default_design_for_images_and_other_inputs():
    f = linear([torch.ones(3, 8, 8)])
    est = LREstimator(shared_noise=False, n_samples=50, seed=0)
    est(f, torch.zeros(1, 3, 8, 8))
    assert est.last_design == "orthogonal-channels"
    est(linear([torch.ones(1, 8, 8)]), torch.zeros(1, 1, 8, 8))
    assert est.last_design == "orthogonal"  # one channel: nothing to share
    est(linear([torch.ones(200)]), torch.zeros(1, 200))
    assert est.last_design == "orthogonal"
    est(linear([torch.ones(3, 2, 2)]), torch.zeros(1, 3, 2, 2))
    assert est.last_design == "coordinate"  # d = 12 <= 50: exact sweep


def test_channel_constant_gradient_is_exact_from_a_third_of_the_queries():
    # d = 108, m = 36 pixels: the probes (2 per stratum) find the shared
    # stratum carries everything, the row sweeps all 36 shared directions.
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, 6, 6, generator=gen, dtype=torch.float64).expand(3, 6, 6)
    x = copies(torch.randn(3, 6, 6, generator=gen, dtype=torch.float64), 5)
    est = LREstimator(shared_noise=False, n_samples=40, sigma=1.0, seed=1)
    (g,) = est(linear([w]), x)
    assert est.queries == 5 * 41
    assert (est.last_contrast_scale < 1).all()
    torch.testing.assert_close(g, w.expand_as(g), rtol=1e-9, atol=1e-9)
    cos = torch.nn.functional.cosine_similarity(g.flatten(1), w.reshape(1, -1))
    assert (cos > 0.999).all()  # the plain orthogonal design: sqrt(40/108) = 0.61


def test_contrast_gradient_makes_rows_sample_in_proportion_without_bias():
    # Channel-mean-free gradient: shared probes see no change, so every row
    # samples both strata in proportion; the estimate is unbiased for g.
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    w = w - w.mean(0, keepdim=True)
    rows = 400
    est = LREstimator(shared_noise=False, n_samples=32, sigma=1.0, seed=3)
    (g,) = est(linear([w]), torch.zeros(rows, 3, 5, 4, dtype=torch.float64))
    assert (est.last_contrast_scale == 1).all()
    mu, se = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - w).abs() <= Z * se + 1e-9).all()
    torch.testing.assert_close(est.project(g, w.expand_as(g))[0], w.expand_as(g))


@given(
    c=st.integers(2, 4),
    h=st.integers(1, 5),
    wd=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_few_samples_are_unbiased_for_the_channel_mean_gradient(c, h, wd, seed):
    # Below 32 samples there are no probes: every row samples the shared
    # stratum only, an unbiased estimate of the channel-mean gradient.
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(c, h, wd, generator=gen, dtype=torch.float64)
    m = h * wd
    n = max(1, min(m - 1, 31))
    rows = 300
    est = LREstimator(
        shared_noise=False,
        n_samples=n,
        sigma=1.0,
        seed=seed,
        design="orthogonal-channels",
    )
    (g,) = est(linear([w]), torch.zeros(rows, c, h, wd, dtype=torch.float64))
    target = channel_mean(w)
    torch.testing.assert_close(est.project(g, w.expand_as(g))[0], target.expand_as(g))
    mu, se = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - target).abs() <= Z * se + 1e-9).all()


@given(
    c=st.integers(2, 4),
    h=st.integers(1, 4),
    wd=st.integers(1, 4),
    extra=st.integers(0, 5),
    seed=st.integers(0, 10_000),
)
def test_tuple_of_images_is_exact_with_a_complete_basis(c, h, wd, extra, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(c, h, wd), (c, wd, h + 1)]
    w = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    x = tuple(torch.randn((2,) + s, generator=gen, dtype=torch.float64) for s in shapes)
    d = sum(math.prod(s) for s in shapes)
    est = LREstimator(
        shared_noise=False,
        n_samples=d + extra,
        sigma=1.0,
        seed=seed,
        design="orthogonal-channels",
    )
    assert est.samples_per_row(x) == d
    grads = est(linear(w), x)
    assert est.queries == 2 * (d + 1)
    for g, wi in zip(grads, w):
        torch.testing.assert_close(g, wi.expand_as(g), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("fn", ["linear", "quadratic"])
@pytest.mark.parametrize("n", [12, 40])
def test_standard_error_is_calibrated(correlated, fn, n):
    # The error observed across independent rows matches the reported standard
    # error within 20 %, around what project() says is estimated.
    shape, rows = (3, 4, 4), 500
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    if correlated:
        w = channel_mean(w) + 0.3 * w
    a = torch.linspace(0.5, 3, 48, dtype=torch.float64).reshape(shape)
    x0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    if fn == "linear":

        def f(x):
            return (x * w).flatten(1).sum(1)

        grad = w
    else:

        def f(x):
            return (0.5 * a * x * x + w * x).flatten(1).sum(1)

        grad = a * x0 + w
    est = LREstimator(
        shared_noise=False, n_samples=n, sigma=1e-2, seed=6, track_stderr=True
    )
    x = copies(x0, rows)
    (g,) = est(f, x)
    (se,) = est.last_stderr
    (target,) = est.project(x, grad.expand_as(x))
    observed = (g - target).pow(2).mean().sqrt()
    reported = se.pow(2).mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2


def test_design_errors_say_what_to_change():
    with pytest.raises(ValueError, match="needs every input tensor to have"):
        LREstimator(shared_noise=False, design="orthogonal-channels")(
            linear([torch.ones(100)]), torch.zeros(1, 100)
        )
    with pytest.raises(ValueError, match="same C"):
        LREstimator(shared_noise=False, design="orthogonal-channels", n_samples=4)(
            linear([torch.ones(3, 4, 4), torch.ones(2, 4, 4)]),
            (torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4)),
        )
    with pytest.raises(ValueError, match="call the estimator on these inputs first"):
        LREstimator(shared_noise=False, n_samples=40).project(
            torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)
        )
