"""No host round trip per chunk: the query loop builds its indices on the
inputs' device, so the host syncs of a call do not grow with its chunks."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from captum_lr import Grid, LREstimator
from captum_lr.estimation import estimator as estimator_module
from captum_lr.estimation.loop import run_queries

SYNCS = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__"}


class CountSyncs(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCS:  # (copies between devices need a GPU to count)
            self.count += 1
        return func(*args, **(kwargs or {}))


def syncs(monkeypatch, max_batch_size, **kwargs):
    """Host syncs inside the query loop of one call."""
    w = torch.randn(3, 10, 10)

    def f(x):
        return (x * w).flatten(1).sum(1)

    mode = CountSyncs()

    def counted(*args, **kw):
        with mode:
            return run_queries(*args, **kw)

    monkeypatch.setattr(estimator_module, "run_queries", counted)
    x = torch.randn(4, 3, 10, 10)
    LREstimator(seed=0, max_batch_size=max_batch_size, **kwargs)(f, x, None)
    return mode.count


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the channel strata with probes and sigma probes
        dict(design="orthogonal"),
        dict(design="gaussian", block=4),
        dict(design="gaussian", feature_mask=torch.arange(300).view(3, 10, 10) // 7),
        dict(prior=Grid(5), n_samples=20),
        dict(n_samples=300),  # an exact sweep
    ],
    ids=lambda k: repr(k)[:30],
)
def test_host_syncs_do_not_grow_with_the_chunks(monkeypatch, kwargs):
    kwargs = {"n_samples": 64, **kwargs}
    few = syncs(monkeypatch, 4096, **kwargs)  # one or two chunks
    many = syncs(monkeypatch, 8, **kwargs)  # dozens of chunks
    assert many == few <= 1, (few, many)  # one: the final check for NaN
