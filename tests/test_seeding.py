"""What a seed fixes: common random numbers.

A seeded estimator's noise is a function of (seed, row shapes, stream, sample
index): not of the input values, not of the other rows of the call, not of
how the queries are chunked. Rows of a plain call share stream 0; the LR
classes give IntegratedGradients' path points and GradientShap's random
baselines their own streams.
"""

import pytest
import torch
from captum.attr import Saliency
from captum.metrics import infidelity, sensitivity_max
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr import (
    Grid,
    LREstimator,
    LRGradientShap,
    LRIntegratedGradients,
    LRSaliency,
)

SHAPE = (3, 7, 11)  # d = 231, not a multiple of 16


def smooth_model(seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(*SHAPE, generator=gen, dtype=torch.float64)

    def f(x):
        return torch.tanh((x * w).flatten(1).sum(1) / 50)

    return f


DESIGNS = [
    dict(design="gaussian"),
    dict(design="gaussian", antithetic=True),
    dict(design="orthogonal"),
    dict(design="orthogonal-channels"),
    dict(design="orthogonal-channels", n_samples=64),  # with probes
    dict(design="coordinate", n_samples=100),  # a random part of a sweep
    dict(design="auto", n_samples=231),  # an exact sweep
    dict(design="gaussian", block=(2, 3)),
    dict(design="gaussian", block=[1, (2, 3), 4]),
    dict(design="gaussian", feature_mask=torch.arange(231).view(*SHAPE) // 7),
    dict(prior=Grid(3)),
]


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("kwargs", DESIGNS, ids=lambda k: repr(k)[:40])
def test_seeded_maps_do_not_depend_on_max_batch_size(kwargs, shared):
    f = smooth_model()
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    kwargs = {"n_samples": 40, **kwargs}
    outs = [
        LREstimator(seed=0, max_batch_size=b, shared_noise=shared, **kwargs)(f, x)[0]
        for b in (1, 7, 64)
    ]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", DESIGNS, ids=lambda k: repr(k)[:40])
def test_an_examples_map_does_not_depend_on_the_rest_of_its_batch(kwargs):
    f = smooth_model()
    x = torch.randn(4, *SHAPE, dtype=torch.float64)
    est = LREstimator(seed=3, **{"n_samples": 40, **kwargs})
    (alone,) = est(f, x[2:3])
    (together,) = est(f, x)
    (reordered,) = est(f, x.flip(0))
    torch.testing.assert_close(alone[0], together[2], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(together, reordered.flip(0), rtol=1e-10, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-7, 1e-4))
def test_seeded_maps_are_smooth_in_the_input(seed, scale):
    """Two inputs that differ by a little get the same directions, so their
    maps differ by about as much as the gradients do (not by the noise)."""
    f = smooth_model(1)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *SHAPE, generator=gen, dtype=torch.float64)
    nudged = x + scale * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    est = LREstimator(seed=seed % 1000, n_samples=40, design="orthogonal")
    (a,) = est(f, x)
    (b,) = est(f, nudged)
    (other,) = LREstimator(seed=seed % 1000 + 1, n_samples=40, design="orthogonal")(
        f, x
    )
    change = (a - b).norm() / a.norm()
    noise = (a - other).norm() / a.norm()  # what unrelated noise would give
    assert change < 1e-2 * noise


def test_a_re_run_sends_exactly_the_same_rows():
    f = smooth_model()
    sent = []

    def recording(x):
        sent.append(x.clone())
        return f(x)

    x = torch.randn(2, *SHAPE, dtype=torch.float64)
    est = LREstimator(seed=9, n_samples=50, max_batch_size=16)
    est(recording, x)
    first, sent[:] = list(sent), []
    est(recording, x)
    assert len(first) == len(sent)
    assert all(torch.equal(a, b) for a, b in zip(first, sent))


def test_rows_of_a_plain_call_share_directions_and_independent_rows_do_not():
    w = torch.randn(50, dtype=torch.float64)

    def f(x):
        return x @ w

    x = torch.zeros(2, 50, dtype=torch.float64)
    (shared,) = LREstimator(seed=0, n_samples=10, sigma=1.0)(f, x)
    (own,) = LREstimator(seed=0, n_samples=10, sigma=1.0, shared_noise=False)(f, x)
    assert torch.equal(shared[0], shared[1])
    assert not torch.equal(own[0], own[1])


def test_noise_streams_give_each_step_its_own_directions_across_calls():
    w = torch.randn(50, dtype=torch.float64)

    def f(x):
        return x @ w

    x = torch.zeros(6, 50, dtype=torch.float64)  # 3 steps of 2 examples
    est = LREstimator(seed=0, n_samples=10, sigma=1.0)
    with est.noise_streams("steps", 2):
        (whole,) = est(f, x)
    with est.noise_streams("steps", 2):  # the same rows in two calls
        (first,) = est(f, x[:4])
        (second,) = est(f, x[4:])
    torch.testing.assert_close(whole, torch.cat([first, second]))
    assert torch.equal(whole[0], whole[1])  # one step: shared
    assert not torch.equal(whole[0], whole[2])  # another step: independent
    with est.noise_streams("samples", 3):
        (cycled,) = est(f, x)
    assert torch.equal(cycled[0], cycled[3]) and not torch.equal(cycled[0], cycled[1])
    with pytest.raises(ValueError, match="not a multiple of 4"):
        with est.noise_streams("steps", 4):
            est(f, x)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def test_sensitivity_of_a_seeded_map_is_that_of_the_model():
    """Captum's sensitivity_max explains perturbed copies of the input in one
    batch; with common random numbers it measures the model (d = 192 > n)."""
    net = SmallCNN().eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)

    def fwd(z):
        with torch.no_grad():
            return net(z)

    lr = LRSaliency(fwd, estimator=LREstimator(seed=0, n_samples=128))
    auto = Saliency(net)
    kw = dict(target=1, perturb_radius=0.02, n_perturb_samples=8)
    s_lr = sensitivity_max(lr.attribute, x, abs=False, **kw)
    s_auto = sensitivity_max(auto.attribute, x, abs=False, **kw)
    assert (s_lr <= 2 * s_auto).all(), (s_lr, s_auto)
    # the previous seeding (noise keyed by the input values) gave 0.68-1.06;
    # noise independent per row gives the same order: the metric can fail
    noisy = LRSaliency(
        fwd, estimator=LREstimator(seed=0, n_samples=128, shared_noise=False)
    )
    s_noisy = sensitivity_max(noisy.attribute, x, abs=False, **kw)
    assert (s_noisy > 10 * s_auto).all(), (s_noisy, s_auto)


def test_infidelity_of_a_seeded_map_is_close_to_autograds():
    net = SmallCNN().eval()
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8)

    def fwd(z):
        with torch.no_grad():
            return net(z)

    def perturb(inputs):
        noise = 0.01 * torch.randn_like(inputs)
        return noise, inputs - noise

    exact = LRSaliency(fwd, estimator=LREstimator(seed=0, n_samples=192))
    attr_exact = exact.attribute(x, target=1, abs=False)
    attr_auto = Saliency(net).attribute(x, target=1, abs=False)
    torch.manual_seed(3)
    inf_exact = infidelity(net, perturb, x, attr_exact, target=1)
    torch.manual_seed(3)
    inf_auto = infidelity(net, perturb, x, attr_auto, target=1)
    torch.testing.assert_close(inf_exact, inf_auto, rtol=0.05, atol=1e-9)


def test_integrated_gradients_path_points_keep_independent_noise():
    """Each path point gets its own stream, so the path average shrinks the
    estimator's error like 1/n_steps in squared norm (a shared stream would
    leave it where one step has it), also when Captum splits the path
    (internal_batch_size), and the map does not depend on that split."""
    d = 400
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    x = torch.randn(4, d, generator=gen, dtype=torch.float64)

    def f(z):
        return z @ w

    def squared_error(n_steps, **kw):
        ig = LRIntegratedGradients(f, estimator=LREstimator(seed=0, n_samples=40))
        attr = ig.attribute(x, n_steps=n_steps, method="riemann_middle", **kw)
        return (attr - w * x).square().sum(), attr

    two, _ = squared_error(2)
    many, whole = squared_error(32)
    assert many < two / 6  # 1/16 expected
    _, split = squared_error(32, internal_batch_size=8)
    torch.testing.assert_close(whole, split, rtol=1e-10, atol=1e-12)


def test_gradient_shap_random_baselines_keep_independent_noise():
    d = 400
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    x = torch.randn(2, d, generator=gen, dtype=torch.float64)
    baselines = torch.zeros(1, d, dtype=torch.float64)

    def f(z):
        return z @ w

    def squared_error(n):
        gs = LRGradientShap(f, estimator=LREstimator(seed=0, n_samples=40))
        torch.manual_seed(0)
        attr = gs.attribute(x, baselines, n_samples=n, stdevs=0.0)
        return (attr - w * x).square().sum()

    assert squared_error(32) < squared_error(2) / 6  # 1/16 expected
