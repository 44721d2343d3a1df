"""The LR neuron classes against Captum's autograd twins, without autograd.

A neuron method differentiates one neuron (``neuron_selector``) with respect
to the model's inputs: the estimator perturbs the inputs (a coordinate sweep
here: at most ``n_samples`` input coordinates, exact up to O(sigma^2)) and a
hook reads the neuron, stopping the forward pass after the layer.
NeuronConductance also differentiates the target with respect to the layer,
perturbing the layer's activation.
"""

import warnings

import numpy as np
import pytest
import torch
from captum._utils import gradient as captum_gradient
from captum.attr import (
    NeuronConductance,
    NeuronGradient,
    NeuronGradientShap,
    NeuronIntegratedGradients,
)
from captum.attr._core.neuron import neuron_conductance as captum_conductance
from captum.attr._core.neuron import neuron_gradient as captum_neuron_gradient
from captum.attr._core.neuron import (
    neuron_integrated_gradients as captum_neuron_ig,
)

from captum_lr import (
    LREstimator,
    LRNeuronConductance,
    LRNeuronGradient,
    LRNeuronGradientShap,
    LRNeuronIntegratedGradients,
)

F64_RTOL = 1e-4
F32_RTOL = 2e-3


def rel_err(a, b):
    if isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        return max(rel_err(x, y) for x, y in zip(a, b))
    assert a.shape == b.shape, (a.shape, b.shape)
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(5, 6)
        self.act = torch.nn.Tanh()
        self.l2 = torch.nn.Linear(6, 4)
        self.l3 = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.l3(torch.nn.functional.softplus(self.l2(self.act(self.l1(x)))))


class TwoInputNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 5)
        self.b = torch.nn.Linear(3, 5)
        self.act = torch.nn.Softplus()
        self.out = torch.nn.Linear(5, 3)

    def forward(self, x1, x2, extra, scale):
        return self.out(self.act(self.a(x1) + self.b(x2) + extra)).tanh() * scale


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(2, 3, 3)
        self.conv2 = torch.nn.Conv2d(3, 2, 3)
        self.fc = torch.nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        h = torch.nn.functional.softplus(self.conv1(x))
        return self.fc(torch.nn.functional.softplus(self.conv2(h)).flatten(1))


class Counter:
    """Counts the rows a module is called with, and whether autograd was on."""

    def __init__(self, module):
        self.rows = 0
        self.grad_enabled = []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.rows += args[0].shape[0]
        self.grad_enabled.append(torch.is_grad_enabled())

    def remove(self):
        self.handle.remove()


def no_grad(model):
    def forward(*args):
        with torch.no_grad():
            return model(*args)

    return forward


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


X64 = torch.randn(3, 5, generator=torch.Generator().manual_seed(1)).double()

SELECTORS = {
    "index": 2,
    "slice": (slice(1, 4),),
    "callable": lambda out: out[:, 0] * out[:, 3],
}

NEURON_CASES = {
    "gradient": (NeuronGradient, LRNeuronGradient, {}),
    "integrated_gradients": (
        NeuronIntegratedGradients,
        LRNeuronIntegratedGradients,
        dict(n_steps=5),
    ),
    "conductance": (
        NeuronConductance,
        LRNeuronConductance,
        dict(n_steps=5, target=1),
    ),
}


@pytest.mark.filterwarnings("ignore:The neuron_selector provided is a callable")
@pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require")
@pytest.mark.parametrize("to_input", [False, True], ids=["output", "input"])
@pytest.mark.parametrize("selector", list(SELECTORS))
@pytest.mark.parametrize("case", list(NEURON_CASES))
def test_neuron_class_matches_captum(case, selector, to_input):
    captum_cls, lr_cls, kw = NEURON_CASES[case]
    net = MLP().double()
    sel = SELECTORS[selector]
    expected = captum_cls(net, net.act).attribute(
        X64, sel, attribute_to_neuron_input=to_input, **kw
    )
    counter = Counter(net)
    lr = lr_cls(no_grad(net), net.act, estimator=LREstimator(seed=0))
    got = lr.attribute(X64, sel, attribute_to_neuron_input=to_input, **kw)
    counter.remove()
    assert rel_err(got, expected) < F64_RTOL
    assert lr.queries == counter.rows
    assert not any(counter.grad_enabled)


def test_gradient_shap_matches_captum_with_the_same_draws():
    net = MLP().double()
    baselines = torch.randn(4, 5, dtype=torch.float64)
    seed_all(3)
    expected = NeuronGradientShap(net, net.act).attribute(
        X64, (slice(0, 2),), baselines, n_samples=4
    )
    seed_all(3)
    lr = LRNeuronGradientShap(no_grad(net), net.act, estimator=LREstimator(seed=0))
    got = lr.attribute(X64, (slice(0, 2),), baselines, n_samples=4)
    assert rel_err(got, expected) < F64_RTOL


def test_neuron_gradient_costs_and_stops_after_the_layer():
    net = MLP().double()
    first, last = Counter(net), Counter(net.l3)
    lr = LRNeuronGradient(no_grad(net), net.act)
    lr.attribute(X64, 4)
    first.remove()
    last.remove()
    b, d = X64.shape[0], X64.shape[1]
    # the layer's activation (b rows), then a central-difference sweep
    assert lr.queries == first.rows == b + b * 2 * d
    # the rest of the network ran only for the activation: every query of
    # the sweep stopped right after the layer
    assert last.rows == b


@pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require")
def test_tuple_inputs_and_additional_args():
    net = TwoInputNet().double()
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(3, 4, generator=g).double()
    x2 = torch.randn(3, 3, generator=g).double()
    extra = torch.randn(3, 5, generator=g).double()
    args = (extra, 2.0)
    for captum_cls, lr_cls, kw in [
        (NeuronGradient, LRNeuronGradient, {}),
        (NeuronIntegratedGradients, LRNeuronIntegratedGradients, dict(n_steps=4)),
        (NeuronConductance, LRNeuronConductance, dict(n_steps=4, target=[0, 2, 1])),
    ]:
        expected = captum_cls(net, net.act).attribute(
            (x1, x2), 3, additional_forward_args=args, **kw
        )
        got = lr_cls(no_grad(net), net.act).attribute(
            (x1, x2), 3, additional_forward_args=args, **kw
        )
        assert isinstance(got, tuple) and len(got) == 2
        assert rel_err(got, expected) < F64_RTOL, captum_cls


@pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require")
def test_cnn_neuron_index_float32():
    net = SmallCNN()
    x = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    for captum_cls, lr_cls, kw in [
        (NeuronGradient, LRNeuronGradient, {}),
        (NeuronConductance, LRNeuronConductance, dict(n_steps=3, target=0)),
    ]:
        expected = captum_cls(net, net.conv2).attribute(x, (1, 0, 1), **kw)
        lr = lr_cls(no_grad(net), net.conv2, estimator=LREstimator(n_samples=72))
        got = lr.attribute(x, (1, 0, 1), **kw)
        assert rel_err(got, expected) < F32_RTOL, captum_cls


def test_conductance_with_internal_batch_size_and_autograd_off():
    net = MLP().double()
    expected = NeuronConductance(net, net.act).attribute(X64, 1, target=2, n_steps=6)
    counter = Counter(net)
    with torch.no_grad():
        lr = LRNeuronConductance(net, net.act, estimator=LREstimator(seed=0))
        got = lr.attribute(X64, 1, target=2, n_steps=6, internal_batch_size=6)
    counter.remove()
    assert rel_err(got, expected) < F64_RTOL
    assert not any(counter.grad_enabled)
    assert lr.queries == counter.rows


def test_captum_functions_are_restored():
    net = MLP().double()
    LRNeuronGradient(no_grad(net), net.act).attribute(X64, 0)
    LRNeuronIntegratedGradients(no_grad(net), net.act).attribute(X64, 0, n_steps=2)
    LRNeuronConductance(no_grad(net), net.act).attribute(X64, 0, target=0, n_steps=2)
    assert (
        captum_neuron_gradient._forward_layer_eval_with_neuron_grads
        is captum_gradient._forward_layer_eval_with_neuron_grads
    )
    assert (
        captum_neuron_gradient.apply_gradient_requirements
        is captum_gradient.apply_gradient_requirements
    )
    assert (
        captum_neuron_ig.construct_neuron_grad_fn
        is captum_gradient.construct_neuron_grad_fn
    )
    assert (
        captum_conductance.compute_layer_gradients_and_eval
        is captum_gradient.compute_layer_gradients_and_eval
    )


def test_lr_classes_warn_nothing():
    net = MLP().double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LRNeuronGradient(no_grad(net), net.act).attribute(X64, 1)
        LRNeuronIntegratedGradients(no_grad(net), net.act).attribute(X64, 1, n_steps=2)


def test_selector_with_several_values_per_example_is_refused():
    net = MLP()
    with pytest.raises(ValueError, match="one value per example"):
        LRNeuronGradient(no_grad(net), net.act).attribute(
            torch.randn(2, 5), lambda out: out[:, :2]
        )


def test_a_selector_summing_over_the_batch_gives_each_examples_gradient():
    # Captum's docs allow a callable returning one value for the whole batch
    # ("the sum of the neurons in the layer"); autograd then gives each
    # example the gradient of its own share.
    net = MLP().double()
    select = lambda out: torch.sum(out[:, 1:4])  # noqa: E731
    want = NeuronGradient(net, net.act).attribute(X64, select)
    got = LRNeuronGradient(no_grad(net), net.act).attribute(X64, select)
    assert rel_err(got, want) < F64_RTOL
    want = NeuronIntegratedGradients(net, net.act).attribute(X64, select, n_steps=4)
    est = LREstimator(n_samples=8)
    lr = LRNeuronIntegratedGradients(no_grad(net), net.act, estimator=est)
    assert rel_err(lr.attribute(X64, select, n_steps=4), want) < F64_RTOL


def test_a_selector_averaging_over_the_batch_is_refused():
    net = MLP().double()
    with pytest.raises(ValueError, match="not the sum of its values on each row"):
        LRNeuronGradient(no_grad(net), net.act).attribute(
            X64, lambda out: out[:, 1].mean()
        )


def test_integer_inputs_are_refused_with_a_pointer_to_layer_methods():
    net = torch.nn.Sequential(torch.nn.Embedding(10, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match="dtype torch.int64"):
        LRNeuronGradient(no_grad(net), net[1]).attribute(
            torch.tensor([[1, 2], [3, 4]]), 0
        )
