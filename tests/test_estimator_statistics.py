"""Statistical properties of LREstimator on functions with known gradients.

Each batch row is an independent estimate (its own noise), so one call on B
copies of a point gives B i.i.d. estimates. Tolerances are z-scores on the
estimator's variance: for a linear f(x) = w.x and n Gaussian samples the
estimate is (1/n) sum_k (w.u_k) u_k with Var_j = (|w|^2 + w_j^2)/n and
E|g_hat - w|^2 = (d + 1)|w|^2 / n.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import LREstimator, UnperturbedFeaturesWarning
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.supports import Blocks

Z = 5.5  # two-sided z bound: false alarm < 4e-8 per check


def linear(w):
    def f(x):
        return x.reshape(x.shape[0], -1) @ w

    return f


def replicate(x, copies):
    return x.unsqueeze(0).expand(copies, *x.shape).clone()


def mean_and_se(values):
    return values.mean(), values.std(unbiased=True) / math.sqrt(values.shape[0])


@given(
    d=st.integers(4, 40),
    n=st.integers(1, 12),
    antithetic=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_gaussian_error_matches_variance_and_is_unbiased(d, n, antithetic, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    x = torch.randn(d, generator=gen, dtype=torch.float64)
    rows = 400
    est = LREstimator(
        shared_noise=False,
        n_samples=n,
        sigma=0.1,
        design="gaussian",
        antithetic=antithetic,
        seed=seed,
    )
    (g,) = est(linear(w), (replicate(x, rows),))
    err2 = ((g - w) ** 2).sum(1)
    expected = (d + 1) * (w @ w) / n
    mean, se = mean_and_se(err2)
    assert abs(mean - expected) < Z * se + 1e-9
    # unbiased: every coordinate's mean over rows is w_j within its standard error
    mu, se_j = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - w).abs() <= Z * se_j + 1e-9).all()


@pytest.mark.parametrize("n", [16, 64, 256])
def test_error_shrinks_like_one_over_sqrt_n(n):
    d = 48
    w = torch.linspace(-1, 1, d, dtype=torch.float64)
    x = torch.zeros(500, d, dtype=torch.float64)
    est = LREstimator(
        shared_noise=False, n_samples=n, sigma=0.1, design="gaussian", seed=n
    )
    (g,) = est(linear(w), x)
    scaled = ((g - w) ** 2).sum(1) * n / (w @ w)  # expectation d + 1 for every n
    mean, se = mean_and_se(scaled)
    assert abs(mean - (d + 1)) < Z * se


def test_quadratic_antithetic_is_unbiased_and_has_linear_variance():
    # f = 0.5 x'Ax + b'x: antithetic pairs cancel the curvature term exactly.
    d = 10
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    a = a @ a.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    x0 = torch.randn(d, generator=gen, dtype=torch.float64)

    def f(x):
        return 0.5 * ((x @ a) * x).sum(1) + x @ b

    grad = a @ x0 + b
    n, rows = 8, 600
    est = LREstimator(
        shared_noise=False,
        n_samples=n,
        sigma=0.5,
        design="gaussian",
        antithetic=True,
        seed=1,
    )
    (g,) = est(f, replicate(x0, rows))
    mean, se = mean_and_se(((g - grad) ** 2).sum(1))
    assert abs(mean - (d + 1) * (grad @ grad) / n) < Z * se
    mu, se_j = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - grad).abs() <= Z * se_j).all()


def test_quadratic_one_sided_stays_unbiased():
    # Without antithetic pairs the curvature adds variance, not bias:
    # E[(u'Au) u] = 0 for Gaussian u.
    d = 6
    a = torch.diag(torch.arange(1.0, d + 1, dtype=torch.float64))
    x0 = torch.ones(d, dtype=torch.float64)

    def f(x):
        return 0.5 * ((x @ a) * x).sum(1)

    rows = 800
    est = LREstimator(
        shared_noise=False,
        n_samples=4,
        sigma=0.3,
        design="gaussian",
        antithetic=False,
        seed=2,
    )
    (g,) = est(f, replicate(x0, rows))
    mu, se_j = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - a @ x0).abs() <= Z * se_j).all()


@given(d=st.integers(8, 64), frac=st.floats(0.05, 0.9), seed=st.integers(0, 999))
def test_orthogonal_projection_energy(d, frac, seed):
    # n orthonormal directions: g_hat = (d/n) P g with E|Pg|^2 = (n/d)|g|^2.
    n = max(1, int(frac * d))
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    rows = 300
    est = LREstimator(
        shared_noise=False, n_samples=n, sigma=1.0, design="orthogonal", seed=seed
    )
    (g,) = est(linear(w), torch.zeros(rows, d, dtype=torch.float64))
    energy = ((g * n / d) ** 2).sum(1) / (w @ w)  # |Pg|^2 / |g|^2
    mean, se = mean_and_se(energy)
    assert abs(mean - n / d) < Z * se + 1e-12
    mu, se_j = g.mean(0), g.std(0) / math.sqrt(rows)
    assert ((mu - w).abs() <= Z * se_j + 1e-9).all()


@pytest.mark.parametrize("d", [7, 64, 300])
def test_orthogonal_is_exact_at_n_equals_d(d):
    w = torch.randn(d, dtype=torch.float64)
    est = LREstimator(
        shared_noise=False, n_samples=d, sigma=1.0, design="orthogonal", seed=3
    )
    (g,) = est(linear(w), torch.randn(3, d, dtype=torch.float64))
    torch.testing.assert_close(g, w.expand(3, d), rtol=1e-9, atol=1e-9)


def test_sum_of_sines_is_exact_up_to_sigma_squared():
    # Central differences: error_j = a b cos(b x)(sin(b s)/(b s) - 1), so
    # |error_j| <= |a| |b|^3 s^2 / 6.
    d, s = 20, 1e-2
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(d, generator=gen, dtype=torch.float64)
    b = 0.5 + 2 * torch.rand(d, generator=gen, dtype=torch.float64)
    x = torch.randn(5, d, generator=gen, dtype=torch.float64)

    def f(z):
        return (a * torch.sin(b * z)).sum(1)

    (g,) = LREstimator(shared_noise=False, sigma=s)(
        f, x
    )  # d <= n_samples: coordinate sweep
    exact = a * b * torch.cos(b * x)
    bound = a.abs() * b**3 * s**2 / 6
    assert ((g - exact).abs() <= bound + 1e-12).all()
    # and the bias is really there at this sigma (the bound is not vacuous)
    assert (g - exact).abs().max() > 0.05 * bound.max()


def test_softmax_target_matches_autograd_to_sigma_squared():
    d, k, s = 9, 4, 1e-3
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(d, k, generator=gen, dtype=torch.float64)
    x = torch.randn(6, d, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 1])

    def f(z):
        return torch.softmax(z @ w, dim=1)

    (g,) = LREstimator(shared_noise=False, sigma=s)(f, x, target)
    xr = x.clone().requires_grad_()
    (exact,) = torch.autograd.grad(f(xr).gather(1, target[:, None]).sum(), xr)
    # third derivative of a softmax output w.r.t. its logits is at most 1 in
    # magnitude, times |W_j.|_1^3 through the linear map
    bound = s**2 / 6 * w.abs().sum(1) ** 3
    assert ((g - exact).abs() <= bound + 1e-12).all()


def check_blocks(block, sizes):
    """Blocks on 2 x 8 x 8 rows: each coordinate unbiased over the rows whose
    samples covered it; coverage the same for every pixel, with probability
    per sample the mean over ``sizes`` of bh bw / ((8 + bh - 1)(8 + bw - 1))
    (blocks may be cut by the border); channels always together."""
    h = w_ = 8
    weights = torch.randn(2, h, w_, dtype=torch.float64)

    def f(x):
        return (x * weights).flatten(1).sum(1)

    rows, n = 400, 24
    est = LREstimator(shared_noise=False, n_samples=n, sigma=0.2, block=block, seed=6)
    with pytest.warns(UnperturbedFeaturesWarning):
        (g,) = est(f, torch.zeros(rows, 2, h, w_, dtype=torch.float64))
    cov = est.last_coverage[0]
    visited = cov > 0
    # unvisited coordinates are exactly 0, visited ones unbiased
    assert (g[~visited] == 0).all()
    gv = torch.where(visited, g, torch.nan)
    mu = gv.nanmean(0)
    cnt = visited.sum(0)
    sd = ((gv - mu) ** 2).nansum(0).div(cnt - 1).sqrt()
    assert ((mu - weights).abs() <= Z * sd / cnt.sqrt()).all()
    q = sum(a * b / ((h + a - 1) * (w_ + b - 1)) for a, b in sizes) / len(sizes)
    expected = 1 - (1 - q) ** n
    p = (cov[:, 0] > 0).double().mean(0)
    se = math.sqrt(expected * (1 - expected) / rows)
    assert ((p - expected).abs() < Z * se).all()
    assert torch.equal(cov[:, 0], cov[:, 1])


def test_blocks_are_unbiased_per_coordinate_and_cover_uniformly():
    check_blocks((3, 3), [(3, 3)])


def test_multiscale_blocks_are_unbiased_and_cover_uniformly():
    scales = [2, (3, 5), 8]
    check_blocks(scales, [(2, 2), (3, 5), (8, 8)])
    layout = InputLayout([torch.zeros(1, 2, 8, 8)])
    assert "3 scales" in Blocks(scales, layout).describe()


def test_feature_mask_groups():
    d = 12
    mask = torch.arange(d) // 4  # three groups of four
    w = torch.arange(1.0, d + 1, dtype=torch.float64)
    rows = 300
    est = LREstimator(
        shared_noise=False,
        n_samples=6,
        sigma=0.1,
        feature_mask=mask,
        design="gaussian",
        seed=7,
    )
    # d > n_samples keeps the Gaussian design inside the groups
    with pytest.warns(UnperturbedFeaturesWarning):
        (g,) = est(linear(w), torch.zeros(rows, d, dtype=torch.float64))
    cov = est.last_coverage[0]
    for grp in range(3):
        cols = cov[:, mask == grp]
        assert (cols == cols[:, :1]).all()  # a group is perturbed as one
    visited = cov > 0
    gv = torch.where(visited, g, torch.nan)
    mu, cnt = gv.nanmean(0), visited.sum(0)
    sd = ((gv - mu) ** 2).nansum(0).div(cnt - 1).sqrt()
    assert ((mu - w).abs() <= Z * sd / cnt.sqrt()).all()


@given(seed=st.integers(0, 2**31), design=st.sampled_from(["gaussian", "orthogonal"]))
def test_equal_seeds_give_equal_results(seed, design):
    f = linear(torch.randn(30))
    x = torch.randn(3, 30)
    g1 = LREstimator(shared_noise=False, n_samples=5, seed=seed, design=design)(f, x)[0]
    g2 = LREstimator(shared_noise=False, n_samples=5, seed=seed, design=design)(f, x)[0]
    g3 = LREstimator(shared_noise=False, n_samples=5, seed=seed + 1, design=design)(
        f, x
    )[0]
    assert torch.equal(g1, g2)
    assert not torch.equal(g1, g3)
    # rows of one call get their own noise
    assert not torch.equal(g1[0], g1[1])


def test_unseeded_estimator_follows_torch_manual_seed():
    f = linear(torch.randn(30))
    x = torch.randn(2, 30)
    torch.manual_seed(0)
    g1 = LREstimator(shared_noise=False, n_samples=5)(f, x)[0]
    torch.manual_seed(0)
    g2 = LREstimator(shared_noise=False, n_samples=5)(f, x)[0]
    g3 = LREstimator(shared_noise=False, n_samples=5)(f, x)[0]
    assert torch.equal(g1, g2) and not torch.equal(g1, g3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(design="gaussian", block=(2, 3)),
        dict(design="gaussian", block=[1, (2, 3), 4]),
        dict(design="gaussian", feature_mask=torch.arange(48).view(3, 4, 4) // 5),
        dict(design="orthogonal"),
        dict(design="gaussian", antithetic=True),
        dict(design="orthogonal-channels"),
        dict(design="orthogonal-channels", n_samples=40),  # with probes
    ],
)
def test_seeded_results_do_not_depend_on_max_batch_size(kwargs):
    w = torch.randn(3, 4, 4, dtype=torch.float64)

    def f(x):
        return torch.tanh((x * w).flatten(1).sum(1))

    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    kwargs = {"n_samples": 20, **kwargs}
    outs = [
        LREstimator(shared_noise=False, seed=0, max_batch_size=b, **kwargs)(f, x)[0]
        for b in (1, 7, 64)
    ]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-12, atol=1e-12)
