"""estimate_queries: exact forward-row counts for every LR class, before the call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel

from captum_lr import (
    LREstimator,
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.estimation.budget import estimate_queries
from captum_lr.remote.blackbox import BlackBox

W = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))


class Counted:
    def __init__(self):
        self.rows = 0

    def __call__(self, x, *args):
        self.rows += x.shape[0]
        return torch.tanh(x.flatten(1) @ W)


X = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(1))
CASES = [
    ("saliency", LRSaliency, {"target": 1}),
    ("ixg", LRInputXGradient, {"target": [0, 1, 2]}),
    ("ig", LRIntegratedGradients, {"target": 2, "n_steps": 5}),
    (
        "ig-internal-delta",
        LRIntegratedGradients,
        {
            "target": 2,
            "n_steps": 7,
            "internal_batch_size": 4,
            "return_convergence_delta": True,
        },
    ),
    ("ig-riemann", LRIntegratedGradients, {"target": 0, "method": "riemann_trapezoid"}),
    ("shap", LRGradientShap, {"target": 1, "baselines": torch.zeros(4, 3, 4)}),
    (
        "shap-delta",
        LRGradientShap,
        {
            "target": 1,
            "baselines": torch.zeros(2, 3, 4),
            "n_samples": 3,
            "return_convergence_delta": True,
        },
    ),
]


def _seed() -> None:
    torch.manual_seed(5)
    np.random.seed(5)


# NoiseTunnel around GradientShap is left out: Captum itself rejects a
# baseline batch there (GradientShap already runs a NoiseTunnel inside).
PARAMS = [
    pytest.param(*case, tunnel, id=f"{case[0]}{'-tunnel' if tunnel else ''}")
    for case in CASES
    for tunnel in (False, True)
    if not (tunnel and case[1] is LRGradientShap)
]


@pytest.mark.parametrize("name, cls, kwargs, tunnel", PARAMS)
@pytest.mark.parametrize("n_samples", [4, 20])  # random design / coordinate sweep
def test_estimate_is_exact_and_changes_nothing(name, cls, kwargs, tunnel, n_samples):
    fn = Counted()
    estimator = LREstimator(n_samples=n_samples, seed=0, max_batch_size=16)
    method = cls(fn, estimator=estimator)
    attribution = NoiseTunnel(method) if tunnel else method
    if tunnel:
        kwargs = {**kwargs, "nt_samples": 2, "nt_type": "smoothgrad"}
    _seed()
    expected = estimate_queries(attribution, X, **kwargs)
    assert fn.rows == 0 and estimator.queries == 0  # the model was not called
    _seed()
    first = attribution.attribute(X, **kwargs)
    assert fn.rows == expected == estimator.queries
    # The dry run left the global RNGs where they were: GradientShap and
    # NoiseTunnel draw from them, and the same seed gives the same map.
    _seed()
    estimate_queries(attribution, X, **kwargs)
    second = attribution.attribute(X, **kwargs)
    torch.testing.assert_close(first, second)


def test_estimate_bounds_blackbox_queries_and_cache_makes_rerun_free():
    bb = BlackBox(Counted(), batch_size=8, input_format="tensor")
    ig = LRIntegratedGradients(bb, estimator=LREstimator(n_samples=6, seed=3))
    expected = estimate_queries(ig, X, target=1, n_steps=4)
    ig.attribute(X, target=1, n_steps=4)
    assert bb.queries + bb.cache_hits == expected and bb.queries <= expected
    ig.attribute(X, target=1, n_steps=4)  # same seed, same inputs: same queries
    assert bb.queries + bb.cache_hits == 2 * expected
    assert bb.cache_hits >= expected


def test_estimate_rejects_non_attributions():
    with pytest.raises(TypeError, match="not a Captum attribution"):
        estimate_queries(object(), X)


def test_estimate_refuses_layer_methods_with_what_to_do():
    from captum_lr import LRLayerConductance

    net = torch.nn.Sequential(
        torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    )
    lc = LRLayerConductance(net, net[1], estimator=LREstimator(seed=0))
    with pytest.raises(TypeError, match="only the model's own forward pass"):
        estimate_queries(lc, torch.randn(3, 5), target=1, n_steps=4)
    assert lc.queries == 0  # nothing was sent


def test_a_dry_run_keeps_the_accuracy_warning_for_the_real_call():
    import warnings

    from captum_lr import LowAccuracyWarning, LRSaliency

    ig = LRSaliency(lambda z: z.flatten(1).sum(1), estimator=LREstimator(seed=0))
    x = torch.randn(1, 3, 32, 32)
    estimate_queries(ig, x)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ig.attribute(x)
    assert any(w.category is LowAccuracyWarning for w in seen)
