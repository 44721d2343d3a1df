"""Several batches in flight: with a forward function that can submit calls
asynchronously (an AsyncForward, as RayForward), the query loop keeps up to
its ``max_in_flight`` calls on their way between the points where the noise
scale or the design adapts, and its attributions equal those of calling the
forward function one batch at a time, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from captum_lr import (
    LREstimator,
    LRGradientShap,
    LRIntegratedGradients,
    LRLayerConductance,
    LRSaliency,
)
from captum_lr.estimation.queries import AsyncForward


def _net() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 3),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()


class _Later:
    """A submitted call, evaluated only when its result is asked for."""

    def __init__(self, owner: InFlight, args: tuple[Any, ...]) -> None:
        self.owner, self.args = owner, args

    def result(self) -> Tensor:
        self.owner.pending -= 1
        return self.owner.fn(*self.args)


class InFlight:
    """A forward function with asynchronous calls (as RayForward: the rows
    are copied when submitted) that records the most calls in flight."""

    def __init__(self, fn: torch.nn.Module, max_in_flight: int) -> None:
        self.fn, self.max_in_flight = fn, max_in_flight
        self.pending = self.most = self.submitted = 0

    def __call__(self, *args: Any) -> Tensor:
        return self.fn(*args)

    def submit(self, *args: Any) -> _Later:
        self.pending += 1
        self.submitted += 1
        self.most = max(self.most, self.pending)
        return _Later(self, tuple(a.clone() for a in args))


X = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
CASES = {
    "saliency": (LRSaliency, {}),
    "ig": (LRIntegratedGradients, {"n_steps": 3}),
    "gradshap": (LRGradientShap, {"baselines": torch.zeros(2, 3, 6, 6)}),
}


def _attribute(cls, fn, seed: int = 0, **kw) -> Tensor:
    # 64 samples in batches of 16 rows: sigma probe pairs, the design's
    # probes, then several chunks between and after the cuts
    est = LREstimator(n_samples=64, seed=seed, max_batch_size=16)
    torch.manual_seed(0)  # GradientShap's baselines and path points
    np.random.seed(0)
    return cls(fn, estimator=est).attribute(X, target=1, **kw)


def test_fake_is_an_async_forward():
    assert isinstance(InFlight(_net(), 2), AsyncForward)
    assert not isinstance(_net(), AsyncForward)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batches_in_flight_give_the_single_process_attribution(case, depth):
    cls, kw = CASES[case]
    net = _net()
    want = _attribute(cls, net, **kw)
    fn = InFlight(net, depth)
    got = _attribute(cls, fn, **kw)
    assert torch.equal(got, want)
    assert fn.pending == 0 and fn.submitted > 4
    assert fn.most == depth  # never more, and as many as allowed


def test_a_layer_class_over_an_async_forward_equals_the_plain_one():
    net = _net()
    kw = {"target": 1, "n_steps": 3}
    est = dict(n_samples=32, seed=0, max_batch_size=16)
    want = LRLayerConductance(net, net[1], estimator=LREstimator(**est))
    fn = InFlight(net, 2)
    got = LRLayerConductance(fn, net[1], estimator=LREstimator(**est))
    assert torch.equal(got.attribute(X, **kw), want.attribute(X, **kw))


def test_a_model_error_in_flight_reaches_the_caller():
    net = _net()

    def fails(x: Tensor) -> Tensor:
        if x.shape[0] == 16:  # a full batch after the probes
            raise RuntimeError("model failure")
        return net(x)

    with pytest.raises(RuntimeError, match="model failure"):
        _attribute(LRSaliency, InFlight(fails, 3))
