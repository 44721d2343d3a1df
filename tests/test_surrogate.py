"""The surrogate prior: ``LREstimator(prior=Surrogate(fn))``.

Every statistical check runs many independent estimates in one call (rows with
``shared_noise=False`` draw independent directions) and derives its tolerance
from their spread: Z standard errors.
"""

import math

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr import (
    LREstimator,
    LRIntegratedGradients,
    LRSaliency,
    Surrogate,
    attribute_with_stderr,
    estimate_queries,
)

Z = 5.0
DT = torch.float64


def unit(v):
    return v / v.norm()


def aligned(w, cosine, gen):
    """A vector at ``cosine`` with ``w`` (and the norm of ``w``)."""
    other = torch.randn(w.shape, generator=gen, dtype=DT)
    other = unit(other - (other @ unit(w)) * unit(w))
    return (cosine * unit(w) + math.sqrt(1 - cosine**2) * other) * w.norm()


def linear(w):
    def f(x):
        return x @ w

    return f


def problem(d, cosine, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=gen, dtype=DT)
    return w, aligned(w, cosine, gen)


def estimate(w, s, rows, n, unbiased=False, seed=0, **kw):
    est = LREstimator(
        n_samples=n,
        prior=Surrogate(linear(s), unbiased=unbiased),
        sigma=1.0,
        seed=seed,
        shared_noise=False,
        **kw,
    )
    x = torch.zeros(rows, w.numel(), dtype=DT)
    (g,) = est(linear(w), x)
    return est, x, g


def cosines(g, w):
    return torch.nn.functional.cosine_similarity(g, w.expand_as(g), dim=1)


def mean_and_se(values):
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


@settings(max_examples=20)
@given(
    d=st.integers(2, 30),
    cosine=st.floats(0, 1),
    unbiased=st.booleans(),
    extra=st.integers(0, 3),
    seed=st.integers(0, 100),
)
def test_exact_at_n_equals_d(d, cosine, unbiased, extra, seed):
    w, s = problem(d, cosine, seed)
    est, x, g = estimate(w, s, 3, d + extra, unbiased, seed)
    torch.testing.assert_close(g, w.expand_as(g), rtol=1e-8, atol=1e-8)
    assert est.queries == est.queries_for(x) == 3 * (d + 1)  # n capped at d
    assert torch.allclose(est.last_expected_cosine, torch.ones(3, dtype=DT))


def test_a_zero_surrogate_gradient_falls_back_to_the_orthogonal_design():
    w = torch.randn(12, dtype=DT)
    _, _, g = estimate(w, torch.zeros(12, dtype=DT), 2, 12)
    torch.testing.assert_close(g, w.expand_as(g))
    _, _, g = estimate(w, torch.zeros(12, dtype=DT), 2, 5)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("n", [1, 2, 7])
def test_a_perfect_prior_is_exact_from_its_one_query(n):
    w = torch.randn(20, dtype=DT)
    est, _, g = estimate(w, 3 * w, 4, n)
    torch.testing.assert_close(g, w.expand_as(g))


@settings(max_examples=12)
@given(cosine=st.floats(0, 1), seed=st.integers(0, 100))
def test_unbiased_weight_is_unbiased(cosine, seed):
    # mean of independent estimates vs the true gradient, per coordinate
    w, s = problem(24, cosine, seed)
    rows = 400
    _, _, g = estimate(w, s, rows, 6, unbiased=True, seed=seed)
    se = g.std(0) / math.sqrt(rows)
    assert ((g.mean(0) - w).abs() <= Z * se + 1e-9).all()


@settings(max_examples=12)
@given(cosine=st.floats(0, 1), seed=st.integers(0, 100))
def test_projection_is_unbiased_for_what_project_says(cosine, seed):
    # exact along the prior, rho = m / (d - 1) of the rest
    w, s = problem(24, cosine, seed)
    rows = 400
    est, x, g = estimate(w, s, rows, 6, seed=seed)
    (target,) = est.project(x, w.expand_as(x))
    p = unit(s)
    rho = 5 / 23
    expected = (w @ p) * p + rho * (w - (w @ p) * p)
    torch.testing.assert_close(target, expected.expand_as(target))
    se = g.std(0) / math.sqrt(rows)
    assert ((g.mean(0) - expected).abs() <= Z * se + 1e-9).all()
    # the component along the prior is measured exactly in every row
    torch.testing.assert_close(g @ p, (w @ p).expand(rows))


@settings(max_examples=25)
@given(
    cosine=st.floats(0, 1),
    n=st.integers(2, 31),
    unbiased=st.booleans(),
    seed=st.integers(0, 100),
)
def test_never_worse_than_prior_free_with_one_query_less(cosine, n, unbiased, seed):
    # expected cosine and squared error at n rows vs the orthogonal design
    # (the prior-free default for flat rows) at n - 1 rows
    d, rows = 32, 300
    w, s = problem(d, cosine, seed)
    _, x, g = estimate(w, s, rows, n, unbiased, seed)
    free = LREstimator(
        n_samples=n - 1, design="orthogonal", sigma=1.0, seed=seed, shared_noise=False
    )
    (h,) = free(linear(w), x)
    cos_g, se_g = mean_and_se(cosines(g, w))
    cos_h, se_h = mean_and_se(cosines(h, w))
    assert cos_g >= cos_h - Z * math.hypot(se_g, se_h)
    err_g, se_eg = mean_and_se((g - w).square().sum(1))
    err_h, se_eh = mean_and_se((h - w).square().sum(1))
    assert err_g <= err_h + Z * math.hypot(se_eg, se_eh) + 1e-9
    if not unbiased:  # E cos^2 = c^2 + (1 - c^2) rho exactly for the projection
        rho = (n - 1) / (d - 1)
        figure = cosine**2 + (1 - cosine**2) * rho
        squared = cosines(g, w).square()
        assert (
            abs(float(squared.mean()) - figure)
            <= Z * float(squared.std() / math.sqrt(rows)) + 1e-9
        )


def test_projection_beats_the_prior_and_the_prior_free_design():
    # the point of the prior: at d = 400, 20 rows, cosine 0.5
    d, n, rows = 400, 20, 50
    w, s = problem(d, 0.5, 0)
    _, x, g = estimate(w, s, rows, n)
    (h,) = LREstimator(n_samples=n, sigma=1.0, shared_noise=False, seed=0)(linear(w), x)
    cos_g, cos_h = float(cosines(g, w).mean()), float(cosines(h, w).mean())
    expected = math.sqrt(0.25 + 0.75 * (n - 1) / (d - 1))
    assert cos_g > 0.5 and cos_g > cos_h
    assert abs(cos_g - expected) < 0.02


@pytest.mark.parametrize("unbiased", [False, True])
def test_standard_error_is_calibrated(unbiased):
    # observed error around the estimate's expectation vs the reported one
    d, n, rows = 40, 13, 500
    w, s = problem(d, 0.4, 3)
    est, x, g = estimate(w, s, rows, n, unbiased, seed=1, track_stderr=True)
    (target,) = est.project(x, w.expand_as(x))
    (se,) = est.last_stderr
    observed = (g - target).square().mean().sqrt()
    reported = se.square().mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2
    est, _, _ = estimate(w, s, 2, d, unbiased, track_stderr=True)
    assert (est.last_stderr[0] < 1e-9).all()  # complete: exact


@pytest.mark.filterwarnings("ignore::captum_lr.LowAccuracyWarning")
def test_attribute_with_stderr_z_scores():
    # 8 replicates of 5 samples each on 60 coordinates (a random design)
    d, n = 60, 48
    w, s = problem(d, 0.6, 5)
    x = torch.randn(40, d, dtype=DT)
    est = LREstimator(
        n_samples=n,
        prior=Surrogate(linear(s), unbiased=True),
        sigma=1.0,
        seed=2,
        shared_noise=False,
    )
    sal = LRSaliency(linear(w), estimator=est)
    budget = estimate_queries(sal, x, abs=False)
    attr, se = attribute_with_stderr(sal, x, replicates=8, abs=False)
    assert est.queries <= budget
    z2 = ((attr - w) / se).square().mean()
    # t with 7 degrees of freedom: E z^2 = 7 / 5
    assert 1.0 <= float(z2) <= 1.9


class Net(torch.nn.Module):
    """Classes from a linear map, times a per-row scale argument."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x, scale):
        return (x @ self.weight) * scale.unsqueeze(1)


def test_through_saliency_and_integrated_gradients_with_target_and_args():
    gen = torch.Generator().manual_seed(0)
    d, classes, rows = 10, 4, 3
    weight = torch.randn(d, classes, generator=gen, dtype=DT)
    model = Net(weight)
    surrogate = Net(weight + 0.3 * torch.randn(d, classes, generator=gen, dtype=DT))
    x = torch.randn(rows, d, generator=gen, dtype=DT)
    scale = torch.tensor([1.0, 2.0, -0.5], dtype=DT)
    target = torch.tensor([0, 3, 1])

    def no_autograd(x, scale):
        with torch.no_grad():
            return model(x, scale)

    kwargs = {"target": target, "additional_forward_args": (scale,)}
    est = LREstimator(n_samples=d, prior=Surrogate(surrogate), seed=0)
    sal = LRSaliency(no_autograd, estimator=est)
    budget = estimate_queries(sal, x, **kwargs)
    got = sal.attribute(x, **kwargs)
    assert est.queries == budget == rows * (d + 1)
    torch.testing.assert_close(got, Saliency(model).attribute(x, **kwargs))
    est = LREstimator(n_samples=d, prior=Surrogate(surrogate), seed=0)
    ig = LRIntegratedGradients(no_autograd, estimator=est)
    got = ig.attribute(x, n_steps=5, **kwargs)
    want = IntegratedGradients(model).attribute(x, n_steps=5, **kwargs)
    torch.testing.assert_close(got, want)
    # fewer rows: the surrogate's estimated alignment is reported per row
    est = LREstimator(n_samples=4, prior=Surrogate(surrogate), seed=0)
    LRSaliency(no_autograd, estimator=est).attribute(x, **kwargs)
    assert est.last_prior_cosine.shape == (rows,)
    assert est.last_design == "surrogate"


def test_tuple_inputs_and_auto_sigma_on_a_smooth_model():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, generator=gen, dtype=DT)
    b = torch.randn(2, 5, generator=gen, dtype=DT)

    def f(x1, x2):
        return torch.tanh(x1 @ torch.ones(3, dtype=DT)) + (x2**2).sum(1)

    def g(x1, x2):
        return torch.tanh(x1 @ torch.ones(3, dtype=DT)) * 0.9 + (x2**2).sum(1)

    xs = (a.clone().requires_grad_(), b.clone().requires_grad_())
    want = torch.autograd.grad(f(*xs).sum(), xs)
    est = LREstimator(n_samples=8, prior=Surrogate(g), seed=0, antithetic=True)
    got = est(f, (a, b))
    for u, v in zip(got, want):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
    assert est.queries == est.queries_for((a, b)) == 2 * 8 * 2


def test_queries_for_counts_the_prior_and_the_sigma_probes():
    w, s = problem(50, 0.3, 0)
    x = torch.randn(3, 50, dtype=DT)
    est = LREstimator(n_samples=20, prior=Surrogate(linear(s)), seed=0)
    est(linear(w), x)
    # 20 samples (the prior's included) + f(x) + 4 probe pairs' second rows
    assert est.queries == est.queries_for(x) == 3 * (20 + 1 + 4)
    again = LREstimator(n_samples=20, prior=Surrogate(linear(s)), seed=0)
    torch.testing.assert_close(again(linear(w), x), est(linear(w), x))


class CountingModel:
    def __init__(self):
        self.calls = 0

    def __call__(self, x, *args):
        self.calls += 1
        return x.sum(1, keepdim=True).repeat(1, 3)


@pytest.mark.parametrize(
    "fn, target, error, match",
    [
        (lambda x: x.sum(), 0, ValueError, "a scalar"),
        (lambda x: x[:1].repeat(1, 3), 0, ValueError, "1 rows for a batch of 2"),
        (lambda x: x.repeat(1, 1), 7, ValueError, "does not index"),
        (lambda x: x, None, ValueError, "selects 4 values"),
        (lambda x: x.detach()[:, :3], 0, TypeError, "does not require grad"),
        (lambda x: torch.ones(2, 3, requires_grad=True), 0, TypeError, "depend"),
        (lambda x: [1.0, 2.0], 0, TypeError, "returned a list"),
        (lambda x: (x > 0).long(), 0, TypeError, "no gradient"),
        (lambda x: x * float("nan"), 0, ValueError, "NaN"),
    ],
)
def test_bad_surrogates_fail_before_any_query(fn, target, error, match):
    model = CountingModel()
    est = LREstimator(n_samples=3, prior=Surrogate(fn))
    with pytest.raises(error, match=match):
        est(model, torch.randn(2, 4), target)
    assert model.calls == 0 and est.queries == 0


def test_no_grad_surrogate_and_bad_options():
    def under_no_grad(x):
        with torch.no_grad():
            return x * 2

    with pytest.raises(TypeError, match="does not require grad"):
        LREstimator(prior=Surrogate(under_no_grad))(lambda x: x, torch.ones(2, 3), 0)
    with pytest.raises(TypeError, match="callable"):
        Surrogate("model")
    with pytest.raises(ValueError, match="cannot be combined with a Surrogate"):
        LREstimator(prior=Surrogate(lambda x: x), design="gaussian")
    with pytest.raises(ValueError, match="cannot be combined"):
        LREstimator(prior=Surrogate(lambda x: x), block=2)
    est = LREstimator(prior=Surrogate(lambda x: x))
    with pytest.raises(ValueError, match="call the estimator"):
        est.project(torch.ones(2, 3), torch.ones(2, 3))


def photo_like(gen, c=3, h=8, w=8):
    """A gradient correlated across channels, as on photos."""
    shared = torch.randn(1, h, w, generator=gen, dtype=DT).expand(c, h, w)
    return shared + 0.3 * torch.randn(c, h, w, generator=gen, dtype=DT)


@pytest.mark.filterwarnings("ignore::captum_lr.LowAccuracyWarning")
@settings(max_examples=10)
@given(cosine=st.floats(0, 1), n=st.integers(8, 150), seed=st.integers(0, 100))
def test_images_never_worse_than_the_default_with_one_query_less(cosine, n, seed):
    # (C, H, W) rows: the complement is sampled with the channel strata
    gen = torch.Generator().manual_seed(seed)
    w = photo_like(gen)
    s = aligned(w.flatten(), cosine, gen).view_as(w)
    x = torch.zeros(100, *w.shape, dtype=DT)

    def f(z):
        return (z * w).flatten(1).sum(1)

    est = LREstimator(
        n_samples=n,
        prior=Surrogate(lambda z: (z * s).flatten(1).sum(1)),
        sigma=1.0,
        seed=seed,
        shared_noise=False,
    )
    (g,) = est(f, x)
    (h,) = LREstimator(n_samples=n - 1, sigma=1.0, seed=seed, shared_noise=False)(f, x)
    cos_g, se_g = mean_and_se(cosines(g.flatten(1), w.flatten()))
    cos_h, se_h = mean_and_se(cosines(h.flatten(1), w.flatten()))
    assert cos_g >= cos_h - Z * math.hypot(se_g, se_h)
    assert cos_g >= cosine - 1e-9  # the prior alone, measured exactly
    assert est.queries == est.queries_for(x)
    with pytest.raises(ValueError, match="data-driven"):
        est.project(x, w.expand_as(x))


def smooth_photo_gradient(gen, c=3, h=48, w=48):
    """A gradient concentrated at low and middle spatial frequencies, shared
    across channels more than not (the frequency strata's regime)."""
    g = photo_like(gen, c, h, w).unsqueeze(0)
    g = torch.nn.functional.pad(g, (3, 3, 3, 3), mode="circular")
    return torch.nn.functional.avg_pool2d(g, 7, 1)[0]


@pytest.mark.filterwarnings("ignore::captum_lr.LowAccuracyWarning")
@pytest.mark.parametrize("cosine", [0.0, 0.5, 0.9])
def test_photos_at_frequency_budgets_never_worse_than_the_default(cosine):
    # 48 px photos at 1,000 samples: the prior-free default samples the
    # frequency strata, and so does the complement of the surrogate's prior
    gen = torch.Generator().manual_seed(7)
    w = smooth_photo_gradient(gen)
    s = aligned(w.flatten(), cosine, gen).view_as(w)
    x = torch.zeros(6, *w.shape, dtype=DT)

    def f(z):
        return (z * w).flatten(1).sum(1)

    est = LREstimator(
        n_samples=1000,
        prior=Surrogate(lambda z: (z * s).flatten(1).sum(1)),
        sigma=1.0,
        seed=3,
        shared_noise=False,
    )
    (g,) = est(f, x)
    default = LREstimator(n_samples=999, sigma=1.0, seed=3, shared_noise=False)
    (h,) = default(f, x)
    assert default.last_design == "orthogonal-frequency"
    cos_g, se_g = mean_and_se(cosines(g.flatten(1), w.flatten()))
    cos_h, se_h = mean_and_se(cosines(h.flatten(1), w.flatten()))
    assert cos_h > 0.5  # the frequency strata's regime, not a toy budget
    assert cos_g >= cos_h - Z * math.hypot(se_g, se_h)
    assert cos_g >= cosine - 1e-9  # the prior alone, measured exactly
    if cosine == 0.9:  # a good prior adds to the strata
        assert cos_g > cos_h + Z * math.hypot(se_g, se_h)
    # the alignment it reports is the prior's, within the rows' spread
    prior_cos, se_p = mean_and_se(est.last_prior_cosine)
    assert abs(prior_cos - cosine) < Z * se_p + 1e-9  # 1e-9: float rounding at 0
    assert est.queries == est.queries_for(x)
    with pytest.raises(ValueError, match="frequency-strata complement"):
        est.project(x, w.expand_as(x))
