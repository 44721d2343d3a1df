"""The frequency-stratified orthogonal design (design="orthogonal-frequency").

Each row probes every stratum (channel-shared or contrast, times a ring of
spatial frequency), then fills the strata in the order of their probes'
output change per direction. Given that decision the estimate must be
unbiased for what ``project()`` says: the gradient's projection on the strata
the row reached, the last one scaled. One call with ``shared_noise=False`` on
R copies of a point gives R independent replicates; tolerances are z-scores
on their spread.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr import LREstimator
from captum_lr.estimation.frequency import FrequencyStrata, rings_for, stratum_ids
from captum_lr.estimation.strata import dct_rows

DESIGN = "orthogonal-frequency"


def linear(w):
    def f(x):
        return (x * w).flatten(1).sum(1)

    return f


def zeros(rows, shape):
    return torch.zeros(rows, *shape, dtype=torch.float64)


def from_coefficients(coef):
    """The image with these DCT coefficients (channels, then 2D pixels)."""
    c, h, w = coef.shape
    mats = [dct_rows(torch.arange(k), k, torch.float64) for k in (c, h, w)]
    return torch.einsum("abe,ac,bh,ew->chw", coef, *mats)


def spectral_gradient(shape, seed, tilt=1.0):
    """A gradient whose energy per direction varies smoothly with frequency
    (peaks mid-spectrum, as the photos' gradients do) and is larger in the
    channel-shared directions; ``tilt=0`` is white."""
    c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    coef = torch.randn(shape, generator=gen, dtype=torch.float64)
    ky = torch.arange(h, dtype=torch.float64).view(1, h, 1) / h
    kx = torch.arange(w, dtype=torch.float64).view(1, 1, w) / w
    radius = torch.maximum(ky, kx)
    envelope = torch.exp(-(((radius - 0.5) / 0.2) ** 2))
    envelope = envelope * torch.tensor([2.0] + [1.0] * (c - 1)).view(c, 1, 1)
    return from_coefficients(coef * (1 - tilt + tilt * envelope))


def replicates(w, n, rows, seed, **kw):
    est = LREstimator(
        n_samples=n,
        sigma=1.0,
        seed=seed,
        shared_noise=False,
        design=DESIGN,
        max_batch_size=4096,
        **kw,
    )
    x = zeros(rows, w.shape)
    (g,) = est(linear(w), x)
    (target,) = est.project(x, w.expand_as(x))
    return est, g, target


@pytest.mark.parametrize(
    "shape,extra", [((3, 16, 16), 0), ((3, 10, 14), 3), ((1, 24, 20), 0)]
)
def test_complete_basis_is_exact(shape, extra):
    w = spectral_gradient(shape, seed=1)
    d = w.numel()
    est, g, target = replicates(w, d + extra, rows=2, seed=2)
    assert est.samples_per_row(zeros(1, shape)) == d
    assert est.queries == 2 * (d + 1)
    torch.testing.assert_close(g, w.expand_as(g), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(target, w.expand_as(g))


def coefficients(x):
    """``(rows, d)`` DCT coefficients (channels, then 2D pixels) of images."""
    c, h, w = x.shape[1:]
    mats = [dct_rows(torch.arange(k), k, torch.float64) for k in (c, h, w)]
    return torch.einsum("rchw,ac,bh,ew->rabe", x, *mats).flatten(1)


def stratum_z_scores(w, g, target):
    """Per stratum ``b`` of the design, the z-score over replicates of the
    error's coefficient along ``P_b w`` (0 in expectation when unbiased; the
    strata's statistics are nearly independent, unlike neighbouring pixels)."""
    shape = w.shape
    rings = rings_for(shape[1], shape[2])
    stratum = stratum_ids(shape, rings, torch.device("cpu"))
    error, ref = coefficients(g - target), coefficients(w.unsqueeze(0))[0]
    z = []
    for b in stratum.unique():
        inside = stratum == b
        norm = ref[inside].square().sum()
        if norm < 1e-12:
            continue
        stat = error[:, inside] @ ref[inside] / norm
        z.append(
            float(stat.mean() / (stat.std() / math.sqrt(len(stat))).clamp_min(1e-15))
        )
    return torch.tensor(z)


@pytest.fixture
def many_probes(monkeypatch):
    """Half the samples probe (instead of a tenth): small images then probe
    every stratum, so the statistical tests run on small rows."""
    monkeypatch.setattr("captum_lr.estimation.frequency.PROBE_SHARE", 2)


@pytest.mark.parametrize("n,tilt", [(150, 0.0), (250, 0.6), (150, 1.0)])
def test_every_stratum_is_unbiased(many_probes, n, tilt):
    # d = 432, 6 strata (3 rings), 8 probes each: tilt 0 (white) makes every
    # row's ranking a coin toss, where a probe-dependent decision biases a
    # naive reweighting; tilt 1 makes most rows agree.
    w = spectral_gradient((3, 12, 12), seed=int(10 * tilt) + n, tilt=tilt)
    est, g, target = replicates(w, n, rows=1000, seed=n)
    assert est.last_design == DESIGN and est._last_frequency.q == 8
    z = stratum_z_scores(w, g, target)
    # 6 strata x 3 configurations: |z| < 4 fails w.p. 1e-3 when unbiased
    assert z.abs().max() < 4.0, z
    assert float(z.square().mean()) < 3.0, z


def test_unbiased_at_the_real_probe_share():
    # d = 768: 8 strata (4 rings), 6 probes each at 500 samples
    w = spectral_gradient((3, 16, 16), seed=3, tilt=0.6)
    est, g, target = replicates(w, 500, rows=200, seed=4)
    assert est._last_frequency.q == 6
    z = stratum_z_scores(w, g, target)
    assert z.abs().max() < 4.2, z
    assert float(z.square().mean()) < 2.5, z


def test_a_ten_percent_bias_is_detected(many_probes):
    """The statistic above can fail: the same estimate 10 % too large."""
    w = spectral_gradient((3, 12, 12), seed=3, tilt=0.6)
    _, g, target = replicates(w, 150, rows=1000, seed=4)
    z = stratum_z_scores(w, 1.1 * g, target)
    assert float(z.square().mean()) > 4.0, z


def test_a_band_limited_gradient_is_found_from_a_fraction_of_the_basis():
    # every coefficient in one ring of the channel-shared directions: the
    # probes see change there only, the rows fill that stratum first and
    # recover the gradient exactly from about a third of the basis
    shape = (3, 16, 16)
    stratum = stratum_ids(shape, rings_for(16, 16), torch.device("cpu")).view(shape)
    gen = torch.Generator().manual_seed(5)
    coef = torch.randn(shape, generator=gen, dtype=torch.float64)
    w = from_coefficients(torch.where(stratum == 2, coef, 0.0))
    est, g, target = replicates(w, 500, rows=8, seed=6)
    torch.testing.assert_close(g, w.expand_as(g), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(target, w.expand_as(g))
    plain = LREstimator(n_samples=500, sigma=1.0, seed=6, design="orthogonal")
    (o,) = plain(linear(w), zeros(1, shape))
    cos = torch.nn.functional.cosine_similarity(o.flatten(1), w.reshape(1, -1))
    assert float(cos) < 0.9  # sqrt(500 / 768) = 0.81 for the plain design


@settings(max_examples=8, deadline=None)
@given(
    c=st.integers(1, 4),
    h=st.integers(4, 13),
    wd=st.integers(4, 13),
    n_frac=st.floats(0.3, 0.95),
    seed=st.integers(0, 10_000),
)
def test_unbiased_over_shapes(c, h, wd, n_frac, seed):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("captum_lr.estimation.frequency.PROBE_SHARE", 2)
        w = spectral_gradient((c, h, wd), seed, tilt=0.7)
        n = int(n_frac * w.numel())
        _, g, target = replicates(w, n, rows=300, seed=seed)
    z = stratum_z_scores(w, g, target)
    assert z.abs().max() < 4.5, z


@pytest.mark.parametrize("fn,n", [("linear", 150), ("quadratic", 250)])
def test_standard_error_is_calibrated(many_probes, fn, n):
    # The error observed across independent rows matches the reported standard
    # error within 20 %, around what project() says is estimated.
    shape, rows = (3, 12, 12), 300
    w = spectral_gradient(shape, seed=7, tilt=0.6)
    gen = torch.Generator().manual_seed(8)
    a = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
    x0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    if fn == "linear":
        f, grad = linear(w), w
    else:

        def f(x):
            return (0.5 * a * x * x + w * x).flatten(1).sum(1)

        grad = a * x0 + w
    est = LREstimator(
        shared_noise=False,
        n_samples=n,
        sigma=1e-3,
        seed=9,
        design=DESIGN,
        track_stderr=True,
    )
    x = x0.expand(rows, *shape).clone()
    (g,) = est(f, x)
    (se,) = est.last_stderr
    (target,) = est.project(x, grad.expand_as(x))
    observed = (g - target).pow(2).mean().sqrt()
    reported = se.pow(2).mean().sqrt()
    assert 0.8 <= float(observed / reported) <= 1.2


def test_seeded_and_independent_of_chunking():
    w = spectral_gradient((3, 16, 16), seed=10)
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    runs = []
    for batch in (7, 4096):
        est = LREstimator(
            n_samples=600, sigma=1.0, seed=11, design=DESIGN, max_batch_size=batch
        )
        runs.append(est(linear(w), x)[0])
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-12, atol=1e-12)


def test_expected_cosine_matches_the_measured_one():
    w = spectral_gradient((3, 16, 16), seed=12, tilt=1.0)
    rows = 100
    est, g, _ = replicates(w, 500, rows, seed=13)
    cos = torch.nn.functional.cosine_similarity(g.flatten(1), w.reshape(1, -1))
    expected = est.last_expected_cosine
    assert abs(float(cos.mean() - expected.mean())) < 0.05
    # the probes found the peak: well above the plain design's sqrt(n / d)
    assert float(cos.mean()) > math.sqrt(500 / 768) + 0.05


def test_few_samples_do_not_probe_and_are_unbiased_for_the_gradient():
    # below 20 samples per stratum there are no probes: one stratum, the
    # whole basis in a random order (unbiased for the gradient itself)
    w = spectral_gradient((3, 8, 8), seed=14)
    est, g, target = replicates(w, 60, rows=1500, seed=15)
    assert est._last_frequency.q == 0
    torch.testing.assert_close(target, w.expand_as(g))
    assert stratum_z_scores(w, g, target).abs().max() < 4.0


def test_design_errors_say_what_to_change():
    with pytest.raises(ValueError, match="single input tensor with"):
        LREstimator(design=DESIGN, n_samples=40)(
            linear(torch.ones(100)), torch.zeros(1, 100)
        )
    with pytest.raises(ValueError, match="single input tensor with"):
        LREstimator(design=DESIGN, n_samples=4)(
            lambda a, b: a.flatten(1).sum(1) + b.flatten(1).sum(1),
            (torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)),
        )
    with pytest.raises(ValueError, match="call the estimator on these inputs first"):
        LREstimator(design=DESIGN, n_samples=40).project(
            torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)
        )


def test_strata_rank_mid_frequencies_first_on_a_photo_like_spectrum():
    w = spectral_gradient((3, 32, 32), seed=16, tilt=1.0)
    est = LREstimator(n_samples=1500, sigma=1.0, seed=17, design=DESIGN)
    est(linear(w), zeros(1, w.shape))
    strata = est._last_frequency
    assert isinstance(strata, FrequencyStrata)
    first = int(strata.rank[0, 0])
    assert first < strata.rings  # a channel-shared stratum
    assert 2 <= first <= 5  # of the middle rings (8 rings, peak at ring 4)
