"""The LR layer classes against Captum's autograd twins, without autograd.

Layers here have at most ``n_samples`` units, so the default estimator sweeps
the activation's coordinates with central differences: exact up to
O(sigma^2), a relative error ~1e-6 on float64 models and ~1e-4 on float32.
The model's forward runs under ``torch.no_grad`` for the LR classes; a hook
on the model records every row it is called with, to check that the
estimator perturbs the layer's activation and never the model's inputs.
"""

import contextlib
import io
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from captum._utils import gradient as captum_gradient
from captum.attr import (
    InternalInfluence,
    LayerConductance,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
)
from captum.attr._core.layer import grad_cam as captum_grad_cam
from captum.attr._core.layer import layer_conductance as captum_conductance

from captum_lr import (
    GroupPrior,
    LREstimator,
    LRInternalInfluence,
    LRLayerConductance,
    LRLayerGradCam,
    LRLayerGradientShap,
    LRLayerGradientXActivation,
    LRLayerIntegratedGradients,
)

F64_RTOL = 1e-4
F32_RTOL = 2e-3


def rel_err(a, b):
    if isinstance(b, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        return max(rel_err(x, y) for x, y in zip(a, b))
    assert a.shape == b.shape, (a.shape, b.shape)
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


class MLP(torch.nn.Module):
    def __init__(self, width=6):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(5, width)
        self.act = torch.nn.Tanh()
        self.l2 = torch.nn.Linear(width, 4)
        self.l3 = torch.nn.Linear(4, 3)

    def forward(self, x):
        # nonlinear after the layer, so its gradient varies along a path
        return self.l3(torch.nn.functional.softplus(self.l2(self.act(self.l1(x)))))


class TwoInputNet(torch.nn.Module):
    """Two tensor inputs and extra (tensor, scalar) arguments."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 5)
        self.b = torch.nn.Linear(3, 5)
        self.act = torch.nn.Softplus()
        self.out = torch.nn.Linear(5, 3)

    def forward(self, x1, x2, extra, scale):
        return self.out(self.act(self.a(x1) + self.b(x2) + extra)).tanh() * scale


class Branches(torch.nn.Module):
    """Two independent branches (a list of layers) and a tuple-valued layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(4, 3)
        self.out = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.tanh(self.a(x)) * torch.sigmoid(self.b(x)))


class Split(torch.nn.Module):
    def forward(self, h):
        return h[:, :3], h[:, 3:]


class TupleLayerNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(4, 5)
        self.split = Split()
        self.u = torch.nn.Linear(3, 2)
        self.v = torch.nn.Linear(2, 2)

    def forward(self, x):
        p, q = self.split(torch.tanh(self.l1(x)))
        return self.u(p) * torch.sigmoid(self.v(q))


class SharedAct(torch.nn.Module):
    """One module run twice: Captum differentiates its last run."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(4, 3)
        self.l3 = torch.nn.Linear(4, 3)
        self.act = torch.nn.Tanh()
        self.out = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.out(self.act(self.l1(x)) * self.act(self.l3(x)))


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.pool = torch.nn.AvgPool2d(2)
        self.conv2 = torch.nn.Conv2d(4, 4, 3)
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = self.pool(torch.nn.functional.softplus(self.conv1(x)))
        return self.fc(torch.nn.functional.softplus(self.conv2(h)).flatten(1))


class TokenModel(torch.nn.Module):
    """Token ids -> embedding -> mean pool -> classifier."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(20, 4, padding_idx=0)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, ids):
        return self.fc(torch.tanh(self.embedding(ids)).mean(1))


class Recorder:
    """Records the rows of every call of a module and whether autograd was on."""

    def __init__(self, module):
        self.rows = []
        self.grad_enabled = []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.rows.append(tuple(a.detach().clone() for a in args))
        self.grad_enabled.append(torch.is_grad_enabled())

    @property
    def count(self):
        return sum(r[0].shape[0] for r in self.rows)

    def stacked(self, i=0):
        return torch.cat([r[i].reshape(r[i].shape[0], -1) for r in self.rows])

    def remove(self):
        self.handle.remove()


def seed_all(seed):
    """Captum draws GradientShap's baselines and points from both generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def no_grad(model):
    def forward(*args):
        with torch.no_grad():
            return model(*args)

    return forward


def assert_rows_within(lr_rows, captum_rows):
    """Every row the LR class sent is a row Captum's twin sent itself."""
    lr_u = torch.unique(lr_rows, dim=0)
    cap_u = torch.unique(captum_rows, dim=0)
    nearest = torch.cdist(lr_u.double(), cap_u.double()).min(1).values
    assert float(nearest.max()) == 0.0, float(nearest.max())


X64 = torch.randn(3, 5, generator=torch.Generator().manual_seed(1)).double()

LAYER_CASES = {
    "gradient_x_activation": (
        LayerGradientXActivation,
        LRLayerGradientXActivation,
        dict(target=1),
    ),
    "gradcam": (LayerGradCam, LRLayerGradCam, dict(target=1)),
    "internal_influence": (
        InternalInfluence,
        LRInternalInfluence,
        dict(target=1, n_steps=6),
    ),
    "conductance": (
        LayerConductance,
        LRLayerConductance,
        dict(target=2, n_steps=6, baselines=0.5),
    ),
    "integrated_gradients": (
        LayerIntegratedGradients,
        LRLayerIntegratedGradients,
        dict(target=0, n_steps=6, method="riemann_trapezoid"),
    ),
}


@pytest.mark.parametrize("to_input", [False, True], ids=["output", "input"])
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layer_class_matches_captum_and_never_perturbs_inputs(case, to_input):
    captum_cls, lr_cls, kw = LAYER_CASES[case]
    net = MLP().double()
    rec = Recorder(net)
    expected = captum_cls(net, net.act).attribute(
        X64, attribute_to_layer_input=to_input, **kw
    )
    captum_rows = rec.stacked()
    rec.rows.clear()
    rec.grad_enabled.clear()
    lr = lr_cls(no_grad(net), net.act, estimator=LREstimator(seed=0))
    got = lr.attribute(X64, attribute_to_layer_input=to_input, **kw)
    rec.remove()
    assert rel_err(got, expected) < F64_RTOL
    # the model only saw the inputs and rows Captum sends itself (path
    # points): the activation was perturbed, not the model's inputs
    assert_rows_within(rec.stacked(), torch.cat([captum_rows, X64]))
    assert not any(rec.grad_enabled)
    # queries count every row the model was called with
    assert lr.queries == rec.count


def test_costs_one_activation_row_plus_a_sweep_per_example():
    net = MLP(width=6).double()
    rec = Recorder(net)
    lr = LRLayerGradientXActivation(no_grad(net), net.act)
    lr.attribute(X64, target=0)
    rec.remove()
    b, d = X64.shape[0], 6
    assert lr.queries == rec.count == b + b * 2 * d


def test_gradient_shap_matches_captum_with_the_same_draws():
    net = MLP().double()
    baselines = torch.randn(4, 5, dtype=torch.float64)
    seed_all(7)
    expected = LayerGradientShap(net, net.act).attribute(
        X64, baselines, n_samples=4, target=1, return_convergence_delta=True
    )
    seed_all(7)
    lr = LRLayerGradientShap(no_grad(net), net.act, estimator=LREstimator(seed=0))
    got = lr.attribute(
        X64, baselines, n_samples=4, target=1, return_convergence_delta=True
    )
    assert rel_err(got[0], expected[0]) < F64_RTOL
    assert torch.allclose(got[1], expected[1], atol=1e-6)


def test_tuple_inputs_additional_args_and_per_row_targets():
    net = TwoInputNet().double()
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(3, 4, generator=g).double()
    x2 = torch.randn(3, 3, generator=g).double()
    extra = torch.randn(3, 5, generator=g).double()
    args = (extra, 2.0)
    target = [0, 2, 1]
    for captum_cls, lr_cls, kw in [
        (LayerGradientXActivation, LRLayerGradientXActivation, {}),
        (LayerConductance, LRLayerConductance, dict(n_steps=4)),
        (LayerIntegratedGradients, LRLayerIntegratedGradients, dict(n_steps=4)),
    ]:
        for to_input in (False, True):
            expected = captum_cls(net, net.act).attribute(
                (x1, x2),
                target=target,
                additional_forward_args=args,
                attribute_to_layer_input=to_input,
                **kw,
            )
            got = lr_cls(no_grad(net), net.act).attribute(
                (x1, x2),
                target=target,
                additional_forward_args=args,
                attribute_to_layer_input=to_input,
                **kw,
            )
            assert rel_err(got, expected) < F64_RTOL, (captum_cls, to_input)


@pytest.mark.filterwarnings("ignore:Multiple layers provided")
def test_list_of_layers_and_tuple_valued_layers():
    x = torch.randn(4, 4, dtype=torch.float64)
    net = Branches().double()
    layers = [net.a, net.b]
    expected = LayerIntegratedGradients(net, layers).attribute(x, target=1, n_steps=5)
    got = LRLayerIntegratedGradients(no_grad(net), layers).attribute(
        x, target=1, n_steps=5
    )
    assert isinstance(got, list) and len(got) == 2
    assert rel_err(got, expected) < F64_RTOL
    expected = LayerGradientXActivation(net, layers).attribute(x, target=0)
    got = LRLayerGradientXActivation(no_grad(net), layers).attribute(x, target=0)
    assert rel_err(got, expected) < F64_RTOL

    net = TupleLayerNet().double()
    for captum_cls, lr_cls, kw in [
        (LayerGradientXActivation, LRLayerGradientXActivation, {}),
        (LayerConductance, LRLayerConductance, dict(n_steps=4)),
        (LayerIntegratedGradients, LRLayerIntegratedGradients, dict(n_steps=4)),
    ]:
        expected = captum_cls(net, net.split).attribute(x, target=1, **kw)
        got = lr_cls(no_grad(net), net.split).attribute(x, target=1, **kw)
        assert isinstance(got, tuple) and len(got) == 2
        assert rel_err(got, expected) < F64_RTOL, captum_cls


def test_a_list_of_chained_layers_gets_each_layers_total_derivative():
    # l1 feeds act: autograd's gradient with respect to l1's output includes
    # the path through act, so act's perturbation must not cut it.
    x = torch.randn(3, 5, dtype=torch.float64)
    net = MLP().double()
    layers = [net.l1, net.act, net.l2]
    for kw in (dict(target=2), dict(target=0, attribute_to_layer_input=True)):
        expected = LayerGradientXActivation(net, layers).attribute(x, **kw)
        got = LRLayerGradientXActivation(no_grad(net), layers).attribute(x, **kw)
        assert rel_err(got, expected) < F64_RTOL, kw


def test_a_layer_run_twice_is_differentiated_at_its_last_run_as_in_captum():
    x = torch.randn(3, 4, dtype=torch.float64)
    net = SharedAct().double()
    expected = LayerGradientXActivation(net, net.act).attribute(x, target=0)
    got = LRLayerGradientXActivation(no_grad(net), net.act).attribute(x, target=0)
    assert rel_err(got, expected) < F64_RTOL


def test_cnn_float32_exact_sweep_and_gradcam_from_channel_groups():
    net = SmallCNN()
    x = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(3))
    for layer in (net.pool, net.conv2):  # 64 and 16 units
        for captum_cls, lr_cls, kw in [
            (LayerGradientXActivation, LRLayerGradientXActivation, {}),
            (LayerConductance, LRLayerConductance, dict(n_steps=3)),
            (LayerGradCam, LRLayerGradCam, {}),
        ]:
            expected = captum_cls(net, layer).attribute(x, target=2, **kw)
            lr = lr_cls(no_grad(net), layer, estimator=LREstimator(n_samples=64))
            got = lr.attribute(x, target=2, **kw)
            assert rel_err(got, expected) < F32_RTOL, (captum_cls, layer)
    # GradCam needs only each channel's mean gradient: 4 groups, 8 rows each
    channels = GroupPrior(torch.arange(4).view(4, 1, 1))
    cam = LRLayerGradCam(
        no_grad(net), net.pool, estimator=LREstimator(prior=channels, seed=0)
    )
    got = cam.attribute(x, target=2, relu_attributions=True)
    expected = LayerGradCam(net, net.pool).attribute(
        x, target=2, relu_attributions=True
    )
    assert rel_err(got, expected) < F32_RTOL
    assert cam.queries == 2 + 2 * 2 * 4


def test_embedding_layer_of_a_token_model():
    net = TokenModel()
    ids = torch.tensor([[3, 5, 7, 1, 0], [2, 9, 9, 4, 6]])
    pad = torch.zeros_like(ids)
    rec = Recorder(net)
    expected, delta = LayerIntegratedGradients(net, net.embedding).attribute(
        ids, baselines=pad, target=1, n_steps=8, return_convergence_delta=True
    )
    captum_rows = rec.stacked().double()
    rec.rows.clear()
    lig = LRLayerIntegratedGradients(no_grad(net), net.embedding)
    got, got_delta = lig.attribute(
        ids, baselines=pad, target=1, n_steps=8, return_convergence_delta=True
    )
    rec.remove()
    assert got.shape == (2, 5, 4)
    assert rel_err(got, expected) < F32_RTOL
    assert torch.allclose(got_delta, delta, atol=1e-4)
    # the model only ever got the real token ids (and the padding baseline)
    assert_rows_within(rec.stacked().double(), captum_rows)
    assert lig.queries == rec.count
    expected = LayerGradientXActivation(net, net.embedding).attribute(ids, target=0)
    got = LRLayerGradientXActivation(no_grad(net), net.embedding).attribute(
        ids, target=0
    )
    assert rel_err(got, expected) < F32_RTOL
    # the embedding's input is the token ids: not something to perturb
    with pytest.raises(ValueError, match="dtype torch.int64.*embedding"):
        LRLayerGradientXActivation(no_grad(net), net.embedding).attribute(
            ids, target=0, attribute_to_layer_input=True
        )


def test_large_layer_cosine_reaches_the_orthogonal_design_figure():
    torch.manual_seed(0)
    d, n = 256, 64
    net = torch.nn.Sequential(
        torch.nn.Linear(8, d), torch.nn.Tanh(), torch.nn.Linear(d, 3)
    )
    x = torch.randn(4, 8)
    true = net[2].weight[1].detach()
    cosines = []
    for seed in range(3):
        lr = LRLayerGradientXActivation(
            no_grad(net),
            net[1],
            multiply_by_inputs=False,
            estimator=LREstimator(n_samples=n, seed=seed),
        )
        grad = lr.attribute(x, target=1)
        cosines += torch.nn.functional.cosine_similarity(
            grad, true.expand_as(grad), dim=1
        ).tolist()
    assert sum(cosines) / len(cosines) > 0.9 * math.sqrt(n / d)


def test_runs_with_autograd_off_everywhere():
    net = MLP().double()
    expected = LayerConductance(net, net.act).attribute(X64, target=1, n_steps=4)
    rec = Recorder(net)
    with torch.no_grad():
        lr = LRLayerConductance(net, net.act)
        got = lr.attribute(X64, target=1, n_steps=4)
        lig = LRLayerIntegratedGradients(net, net.act)
        lig.attribute(X64, target=1, n_steps=4)
    rec.remove()
    assert rel_err(got, expected) < F64_RTOL
    assert not any(rec.grad_enabled)


def test_internal_batch_size_keeps_the_map():
    net = MLP().double()
    expected = LayerConductance(net, net.act).attribute(X64, target=1, n_steps=6)
    got = LRLayerConductance(
        no_grad(net), net.act, estimator=LREstimator(seed=0)
    ).attribute(X64, target=1, n_steps=6, internal_batch_size=6)
    assert rel_err(got, expected) < F64_RTOL


def test_captum_functions_are_restored_after_calls_and_errors():
    original = captum_gradient.compute_layer_gradients_and_eval
    assert captum_conductance.compute_layer_gradients_and_eval is original
    net = MLP().double()
    LRLayerConductance(no_grad(net), net.act).attribute(X64, target=1, n_steps=2)
    assert captum_conductance.compute_layer_gradients_and_eval is original

    calls = {"n": 0}

    def failing(x):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("model failed")
        return no_grad(net)(x)

    with pytest.raises(RuntimeError, match="model failed"):
        LRLayerGradCam(failing, net.act).attribute(X64, target=1)
    assert captum_grad_cam.compute_layer_gradients_and_eval is original
    assert captum_conductance.compute_layer_gradients_and_eval is original


def test_plain_captum_in_another_thread_keeps_autograd_while_an_lr_call_runs():
    # two copies of the model: forward hooks live on a module, so one module
    # object cannot be attributed from two threads at once (as in Captum)
    net, other = MLP().double(), MLP().double()
    expected = LayerConductance(net, net.act).attribute(X64, target=1, n_steps=3)
    inside, release = threading.Event(), threading.Event()
    result = {}

    def slow(x):
        if x.shape[0] > X64.shape[0]:  # path rows: inside Captum's helper
            inside.set()
            assert release.wait(10)
        return no_grad(net)(x)

    def lr_call():
        lr = LRLayerConductance(slow, net.act)
        result["lr"] = lr.attribute(X64, target=1, n_steps=3)

    worker = threading.Thread(target=lr_call)
    worker.start()
    try:
        assert inside.wait(10)
        # the LR call is inside Captum's module with the name rebound
        assert captum_conductance.compute_layer_gradients_and_eval is not (
            captum_gradient.compute_layer_gradients_and_eval
        )
        got = LayerConductance(other, other.act).attribute(X64, target=1, n_steps=3)
        assert torch.equal(got, expected)
    finally:
        release.set()
        worker.join(30)
    assert rel_err(result["lr"], expected) < F64_RTOL
    assert captum_conductance.compute_layer_gradients_and_eval is (
        captum_gradient.compute_layer_gradients_and_eval
    )


def test_a_layer_whose_first_dimension_is_not_the_batch_is_refused():
    class TimeMajor(torch.nn.Module):
        def forward(self, h):
            return h.T

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = torch.nn.Linear(4, 3)
            self.t = TimeMajor()

        def forward(self, x):
            return self.t(self.l1(x)).T.sum(1, keepdim=True)

    net = Net()
    with pytest.raises(ValueError, match="first dimension must be the batch"):
        LRLayerGradientXActivation(no_grad(net), net.t).attribute(torch.randn(2, 4))


def test_a_layer_the_forward_does_not_run_is_refused():
    net = MLP()
    unused = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="did not run"):
        LRLayerGradCam(no_grad(net), unused).attribute(torch.randn(2, 5), target=0)


def test_readme_example_costs_what_it_says():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = readme.split("## Layer and neuron methods\n", 1)[1].split("\n## ", 1)[0]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "__readme__"}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "README.md", "exec"), namespace)
    assert out.getvalue().split() == ["torch.Size([1,", "4,", "8])", "515"]
    assert "8 × 64 + 1 + 2 = 515" in text
