"""LREstimator.dry_run(): calls inside it leave the row count and the one-time
low-accuracy warning as they were."""

import warnings

import torch

from captum_lr import make_estimator


def test_dry_run_restores_queries_and_the_accuracy_warning():
    est = make_estimator("orthogonal", n_samples=4, seed=0)
    x = torch.randn(1, 400)

    def forward(z):
        return z.sum(1)

    with est.dry_run(), warnings.catch_warnings(record=True) as dry:
        warnings.simplefilter("always")
        est(forward, (x,))
    assert est.queries == 0
    assert dry  # 4 samples for 400 features: the low-accuracy warning fired
    with warnings.catch_warnings(record=True) as real:
        warnings.simplefilter("always")
        est(forward, (x,))
    assert est.queries > 0
    assert [str(w.message) for w in real] == [str(w.message) for w in dry]
