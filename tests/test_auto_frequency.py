"""design="auto" picks the frequency strata for one photo input of >= 48 px at
>= 960 samples per row, and the channel strata otherwise; everything that
depends on the design (project, the expected cosine, standard errors, costs)
follows what auto resolved to."""

import pytest
import torch

from captum_lr import LREstimator
from captum_lr.estimation.designs import AUTO_FREQUENCY_PROBES, auto_frequency
from captum_lr.estimation.layout import InputLayout


def _linear(shape, seed=0):
    w = torch.randn((1, *shape), generator=torch.Generator().manual_seed(seed))
    w = w.double()

    def f(z):
        return (z * w).flatten(1).sum(1)

    return f, w


@pytest.mark.parametrize(
    "shape, n, design",
    [
        ((3, 64, 64), 960, "orthogonal-frequency"),
        ((3, 64, 64), 4000, "orthogonal-frequency"),
        ((3, 48, 48), 960, "orthogonal-frequency"),
        ((3, 64, 64), 959, "orthogonal-channels"),  # 3 probes per stratum
        ((3, 64, 64), 500, "orthogonal-channels"),
        ((3, 32, 32), 2000, "orthogonal-channels"),  # 8 rings, not 12
        ((3, 47, 64), 2000, "orthogonal-channels"),
        ((1, 64, 64), 2000, "orthogonal"),  # not a colour image
    ],
)
def test_auto_resolves(shape, n, design):
    x = torch.zeros((2, *shape))
    choice = LREstimator(n_samples=n).design_for(x)
    assert choice.design == design
    assert choice.n_samples == n and not choice.antithetic and not choice.sweep
    # the cost does not depend on the design: n + f(x) + 4 sigma probes
    assert LREstimator(n_samples=n).queries_for(x) == 2 * (n + 5)


def test_auto_threshold_is_four_probes_per_stratum():
    layout = InputLayout((torch.zeros(1, 3, 112, 112),))
    assert AUTO_FREQUENCY_PROBES == 4
    # 24 strata x 10 (PROBE_SHARE) x 4 probes
    assert not auto_frequency(layout, 959)
    assert auto_frequency(layout, 960)
    assert not auto_frequency(None, 4000)


def test_auto_keeps_channels_for_several_inputs_and_blocks():
    x = (torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    assert LREstimator(n_samples=2000).design_for(x).design == "orthogonal-channels"
    one = torch.zeros(1, 3, 64, 64)
    assert LREstimator(n_samples=2000, block=8).design_for(one).design == "gaussian"
    explicit = LREstimator(n_samples=2000, design="orthogonal-channels")
    assert explicit.design_for(one).design == "orthogonal-channels"


@pytest.mark.filterwarnings("ignore::captum_lr.LowAccuracyWarning")
@pytest.mark.parametrize(
    "shape, n, design",
    [
        ((3, 64, 64), 1000, "orthogonal-frequency"),
        ((3, 32, 32), 1000, "orthogonal-channels"),
    ],
)
def test_auto_call_matches_explicit_design(shape, n, design):
    f, w = _linear(shape)
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(1)).double()
    grad = w.expand_as(x)
    auto = LREstimator(n_samples=n, seed=3, track_stderr=True)
    explicit = LREstimator(n_samples=n, seed=3, track_stderr=True, design=design)
    (got,) = auto(f, x)
    (want,) = explicit(f, x)
    assert auto.last_design == design
    assert auto.queries == explicit.queries == 2 * (n + 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(auto.last_stderr[0], explicit.last_stderr[0])
    torch.testing.assert_close(auto.last_expected_cosine, explicit.last_expected_cosine)
    (projected,) = auto.project(x, grad)
    (expected,) = explicit.project(x, grad)
    torch.testing.assert_close(projected, expected, rtol=0, atol=0)
    if design == "orthogonal-frequency":
        # project() is what the estimate is unbiased for: not the gradient
        # itself (strata not reached); the estimate is much closer to it (it
        # differs only on the marginal stratum's unsampled directions)
        assert not torch.allclose(projected, grad)
        cos = torch.nn.functional.cosine_similarity
        to_projection = cos(got.flatten(1), projected.flatten(1))
        to_gradient = cos(got.flatten(1), grad.flatten(1))
        assert (to_projection > 0.95).all()
        assert (to_projection > to_gradient + 0.3).all()
        assert auto.last_contrast_scale is None
    else:
        assert auto.last_contrast_scale is not None


def test_project_before_auto_frequency_call_raises():
    x = torch.zeros((1, 3, 64, 64))
    est = LREstimator(n_samples=1000)
    with pytest.raises(ValueError, match="orthogonal-frequency"):
        est.project(x, torch.ones_like(x))


def test_report_shows_the_new_default_from_committed_results():
    """The committed accuracy runs predate the switch: the report relabels
    their default at 1000 / 4000 rows as the channel strata and shows the
    frequency strata's records (what the default now runs) as the default;
    at 100 rows (95 samples) the default is still the channel strata."""
    import json

    from benchmarks.accuracy import PREVIOUS_DEFAULT, apply_default_switch
    from benchmarks.common import RESULTS

    raw = json.loads((RESULTS / "accuracy_112px.json").read_text())
    new = json.loads((RESULTS / "accuracy_112px_frequency.json").read_text())
    data = apply_default_switch(raw, RESULTS)

    def cosines(records, method, budget):
        return sorted(
            (r["image"], r["cosine"])
            for r in records
            if r["method"] == method and r["budget"] == budget
        )

    for b in (1000, 4000):
        assert cosines(data["records"], "captum_lr:default", b) == cosines(
            new["records"], "captum_lr:orthogonal-frequency", b
        )
        assert cosines(data["records"], PREVIOUS_DEFAULT, b) == cosines(
            raw["records"], "captum_lr:default", b
        )
    old_100 = cosines(raw["records"], "captum_lr:default", 100)
    assert len(old_100) == 8
    assert cosines(data["records"], "captum_lr:default", 100) == old_100
    assert cosines(data["records"], PREVIOUS_DEFAULT, 100) == old_100
    # what the default resolves to at these budgets (112 px, n + 5 rows)
    x = torch.zeros(1, 3, 112, 112)
    assert LREstimator(n_samples=95).design_for(x).design == "orthogonal-channels"
    for n in (995, 3995):
        assert LREstimator(n_samples=n).design_for(x).design == "orthogonal-frequency"
    assert apply_default_switch(new, RESULTS) is new  # no switch field: as is
