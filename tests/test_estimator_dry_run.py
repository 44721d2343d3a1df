"""LREstimator.dry_run(): calls inside it leave the row count and the one-time
low-accuracy warning as they were; count_queries adds to the row count."""

import warnings

import torch

from captum_lr import LREstimator, make_estimator


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


def test_count_queries_adds_the_rows_to_queries():
    est = LREstimator(n_samples=4, seed=0)
    est(lambda z: z.sum(1), (torch.randn(2, 3),))
    before = est.queries
    assert before > 0
    est.count_queries(3)
    assert est.queries == before + 3
