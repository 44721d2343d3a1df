"""A ``torch.jit.script``-ed model is explained by the LR input classes.

The input classes only call the forward function, so a scripted module (which
takes no new Python hooks) works like any other; here its forward runs under
``torch.no_grad`` inside TorchScript, so autograd cannot answer at all. The
rows have at most ``n_samples`` coordinates: exact sweeps, compared with
Captum's autograd attributions of the same, unscripted network (float64).
"""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from captum_lr import LREstimator, LRIntegratedGradients, LRSaliency, patch_captum

RTOL = 1e-4
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = torch.nn.Linear(7, 6)
        self.lin2 = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(torch.tanh(self.lin1(x)))


class Frozen(torch.nn.Module):
    def __init__(self, net: Net):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(x)


@pytest.fixture
def models():
    torch.manual_seed(0)
    net = Net().double().eval()
    return net, torch.jit.script(Frozen(net))


def rel_err(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


def test_scripted_model_has_no_autograd(models):
    _, scripted = models
    assert isinstance(scripted, torch.jit.ScriptModule)
    x = torch.randn(2, 7, dtype=torch.float64, requires_grad=True)
    assert not scripted(x).requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        Saliency(scripted).attribute(x, target=0)


@pytest.mark.parametrize("target", [0, 2])
def test_saliency_of_scripted_model_matches_autograd(models, target):
    net, scripted = models
    x = torch.randn(5, 7, dtype=torch.float64)
    lr = LRSaliency(scripted, LREstimator(seed=0))
    estimate = lr.attribute(x, target=target, abs=False)
    leaf = x.clone().requires_grad_()
    truth = Saliency(net).attribute(leaf, target=target, abs=False)
    assert rel_err(estimate, truth) < RTOL
    assert lr.queries == 5 * 2 * 7  # central differences over 7 coordinates


def test_integrated_gradients_of_scripted_model_matches_autograd(models):
    net, scripted = models
    x = torch.randn(4, 7, dtype=torch.float64)
    baseline = torch.zeros_like(x)
    kw = dict(baselines=baseline, target=1, n_steps=6, return_convergence_delta=True)
    lr = LRIntegratedGradients(scripted, estimator=LREstimator(seed=0))
    estimate, delta = lr.attribute(x, **kw)
    truth, true_delta = IntegratedGradients(net).attribute(x.requires_grad_(), **kw)
    assert rel_err(estimate, truth) < RTOL
    assert torch.allclose(delta, true_delta, atol=1e-6)


def test_patched_captum_explains_scripted_model(models):
    net, scripted = models
    x = torch.randn(3, 7, dtype=torch.float64)
    with patch_captum(LREstimator(seed=0)):
        estimate = IntegratedGradients(scripted).attribute(x, target=2, n_steps=5)
    truth = IntegratedGradients(net).attribute(x.requires_grad_(), target=2, n_steps=5)
    assert rel_err(estimate, truth) < RTOL
