"""captum_lr.patch_captum(): unchanged Captum code without autograd.

Captum's own classes, built inside the switch, run on models under
``torch.no_grad`` and agree with their autograd results outside it (exact
sweeps: the inputs and layers here have at most ``n_samples`` coordinates);
the switch restores every rebound name to Captum's own object, after an
exception and in any nesting order; backward-rewriting methods raise a clear
error; FGSM and PGD move along the true gradient's sign.
"""

import captum.attr
import numpy as np
import pytest
import torch
from captum._utils import gradient as captum_gradient
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    LayerConductance,
    LayerGradCam,
    LayerIntegratedGradients,
    NeuronConductance,
    NeuronGradient,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from captum.attr._utils import attribution as captum_attribution
from captum.robust import FGSM, PGD

from captum_lr import (
    LREstimator,
    LRIntegratedGradients,
    LRLayerConductance,
    LRLayerIntegratedGradients,
    NeedsAutogradError,
    patch_captum,
)
from captum_lr.patch import BACKWARD_REWRITING, _targets

RTOL = 1e-4


def rel_err(a, b):
    if isinstance(b, tuple):
        return max(rel_err(x, y) for x, y in zip(a, b))
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(5, 6)
        self.relu = torch.nn.ReLU()
        self.act = torch.nn.Tanh()
        self.l2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.l2(self.act(self.l1(x)))


class NoGradNet(Net):
    """The same model without autograd."""

    def forward(self, x):
        with torch.no_grad():
            return super().forward(x)


def seed_all(seed):
    """Captum draws baselines and noise from torch's and NumPy's generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def snapshot():
    """Every name the switch rebinds, as the owner holds it now."""
    return {
        (owner, name): vars(owner).get(name, "<inherited>")
        for owner, name, _ in _targets()
    }


X = torch.randn(3, 5, generator=torch.Generator().manual_seed(1)).double()


def models():
    net = Net().double()
    black = NoGradNet().double()
    black.load_state_dict(net.state_dict())
    return net, black


def test_importing_changes_nothing_and_undo_restores_every_name():
    assert captum_attribution.compute_gradients is captum_gradient.compute_gradients
    before = snapshot()
    assert not any(getattr(v, "_captum_lr_reroute", False) for v in before.values())
    handle = patch_captum()
    during = snapshot()
    assert all(during[k] is not before[k] for k in before)
    handle.undo()
    handle.undo()  # a second undo does nothing
    assert all(snapshot()[k] is before[k] for k in before)
    with pytest.raises(RuntimeError, match="inside the switch"):
        with patch_captum():
            raise RuntimeError("inside the switch")
    assert all(snapshot()[k] is before[k] for k in before)


def test_nesting_in_any_order():
    before = snapshot()
    outer_est, inner_est = LREstimator(seed=0), LREstimator(seed=1)
    net, black = models()
    outer = patch_captum(outer_est)
    inner = patch_captum(inner_est)
    Saliency(black).attribute(X, target=0)
    assert inner_est.queries > 0 and outer_est.queries == 0
    outer.undo()  # out of order: the inner switch stays on
    assert inner.active and not outer.active
    Saliency(black).attribute(X, target=0)
    assert outer_est.queries == 0
    inner.undo()
    assert all(snapshot()[k] is before[k] for k in before)
    with patch_captum(outer_est):
        with patch_captum(inner_est):
            pass
        spent = outer_est.queries
        Saliency(black).attribute(X, target=0)
        assert outer_est.queries > spent
    assert all(snapshot()[k] is before[k] for k in before)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_captum_classes_built_inside_agree_with_autograd():
    net, black = models()
    cases = [
        (Saliency, (), dict(target=1, abs=False)),
        (InputXGradient, (), dict(target=1)),
        (IntegratedGradients, (), dict(target=1, n_steps=6)),
        (LayerConductance, ("act",), dict(target=2, n_steps=5)),
        (LayerGradCam, ("act",), dict(target=0)),
        (LayerIntegratedGradients, ("act",), dict(target=0, n_steps=5)),
        (NeuronConductance, ("act",), dict(neuron_selector=3, target=1, n_steps=4)),
        (NeuronGradient, ("act",), dict(neuron_selector=(slice(0, 3),))),
    ]
    for cls, layer, kw in cases:
        expected = cls(net, *(getattr(net, a) for a in layer)).attribute(X, **kw)
        estimator = LREstimator(seed=0)
        with patch_captum(estimator):
            got = cls(black, *(getattr(black, a) for a in layer)).attribute(X, **kw)
        assert rel_err(got, expected) < RTOL, cls.__name__
        assert estimator.queries > 0, cls.__name__


@pytest.mark.filterwarnings("ignore::captum_lr.LowAccuracyWarning")
def test_integrated_gradients_queries_and_its_path_points_own_streams():
    net, black = models()
    estimator = LREstimator(seed=0)
    with patch_captum(estimator) as switch:
        IntegratedGradients(black).attribute(X, target=1, n_steps=4)
    # a central-difference sweep of the 5 inputs per path point and row
    assert switch.queries == estimator.queries == 4 * 3 * 2 * 5
    seed_all(0)
    baselines = torch.zeros(2, 5, dtype=torch.float64)
    with patch_captum(LREstimator(seed=0)):
        got = GradientShap(black).attribute(X, baselines, n_samples=3, target=0)
    seed_all(0)
    expected = GradientShap(net).attribute(X, baselines, n_samples=3, target=0)
    assert rel_err(got, expected) < RTOL
    # NoiseTunnel around a method built inside the switch
    seed_all(0)
    with patch_captum():
        got = NoiseTunnel(Saliency(black)).attribute(
            X, nt_samples=3, stdevs=0.1, target=0
        )
    seed_all(0)
    expected = NoiseTunnel(Saliency(net)).attribute(
        X, nt_samples=3, stdevs=0.1, target=0
    )
    assert rel_err(got, expected) < RTOL
    # beyond a sweep (40 inputs, 16 samples): each path point draws its own
    # directions, exactly as LRIntegratedGradients does
    wide = torch.nn.Sequential(torch.nn.Linear(40, 3), torch.nn.Tanh()).double()
    x = torch.randn(2, 40, dtype=torch.float64)
    with patch_captum(LREstimator(n_samples=16, seed=0)):
        got = IntegratedGradients(wide).attribute(x, target=1, n_steps=4)
    lr = LRIntegratedGradients(wide, estimator=LREstimator(n_samples=16, seed=0))
    assert torch.equal(got, lr.attribute(x, target=1, n_steps=4))


def test_an_attribution_built_before_the_switch_keeps_autograd():
    net, _ = models()
    saliency = Saliency(net)
    estimator = LREstimator()
    with patch_captum(estimator):
        saliency.attribute(X, target=0)
    assert estimator.queries == 0


def make_backward_rewriting(name, net):
    cls = getattr(captum.attr, name)
    if name in ("DeepLift", "DeepLiftShap", "GuidedBackprop", "Deconvolution", "LRP"):
        return cls(net)
    return cls(net, net.act)


@pytest.mark.parametrize("name", sorted(BACKWARD_REWRITING))
def test_backward_rewriting_methods_raise_a_clear_error(name):
    net, _ = models()
    method = make_backward_rewriting(name, net)
    why, nearest = BACKWARD_REWRITING[name]
    with patch_captum():
        with pytest.raises(NeedsAutogradError) as info:
            method.attribute(X, target=0)
    message = str(info.value)
    assert message.startswith(name + " cannot run under captum_lr.patch_captum()")
    assert "backward pass" in message and nearest in message


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")
def test_backward_rewriting_inside_noise_tunnel_raises_and_works_after_undo():
    net, _ = models()
    with patch_captum():
        with pytest.raises(NeedsAutogradError, match="DeepLift"):
            NoiseTunnel(DeepLift(net)).attribute(X, nt_samples=2, target=0)
    assert DeepLift(net).attribute(X, target=0).shape == X.shape


def test_perturbation_methods_are_untouched():
    net, black = models()
    before = (Occlusion.attribute, FeatureAblation.attribute)
    estimator = LREstimator()
    with patch_captum(estimator):
        assert (Occlusion.attribute, FeatureAblation.attribute) == before
        got = FeatureAblation(black).attribute(X, target=0)
    assert estimator.queries == 0
    assert torch.allclose(got, FeatureAblation(net).attribute(X, target=0))


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(x)


class NoGradLinear(Linear):
    def forward(self, x):
        with torch.no_grad():
            return super().forward(x)


def per_row_cross_entropy(outputs, target):
    return torch.nn.functional.cross_entropy(outputs, target, reduction="none")


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_fgsm_and_pgd_follow_the_true_gradients_sign():
    linear = Linear().double()
    black = NoGradLinear().double()
    black.load_state_dict(linear.state_dict())
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4)).double()
    target = torch.tensor([0, 1, 2, 3, 0])
    # the true gradient of the per-example loss, by autograd
    xg = x.clone().requires_grad_()
    per_row_cross_entropy(linear(xg), target).sum().backward()
    sign = xg.grad.sign()
    eps = 0.1
    estimator = LREstimator(seed=0)
    with patch_captum(estimator):
        moved = FGSM(black, per_row_cross_entropy).perturb(x, eps, target)
        towards = FGSM(black, per_row_cross_entropy).perturb(
            x, eps, target, targeted=True
        )
    assert estimator.queries > 0
    assert torch.allclose(moved - x, eps * sign)
    assert torch.allclose(towards - x, -eps * sign)
    # PGD: each step along the sign of the gradient at the current point
    pgd_kw = dict(radius=0.3, step_size=0.05, step_num=4, target=target)
    expected = PGD(linear, per_row_cross_entropy).perturb(x, **pgd_kw)
    with patch_captum(LREstimator(seed=0)):
        got = PGD(black, per_row_cross_entropy).perturb(x, **pgd_kw)
    assert torch.allclose(got, expected)
    assert not torch.allclose(got, x)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_fgsm_default_loss_matches_autograd_where_outputs_leave_logs_domain():
    # FGSM's default loss is -log(output[target]); autograd differentiates it
    # as -grad(y) / y even where y < 0 (the log itself is NaN there). Under the
    # switch the chain rule is applied to the estimated grad(y), so the attack
    # moves as Captum's does instead of failing on NaN differences.
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3).double()

    class NoGrad(torch.nn.Module):
        def forward(self, x):
            with torch.no_grad():
                return linear(x)

    x = torch.randn(6, 4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        y = linear(x).gather(1, target[:, None])
    assert (y < 0).any() and (y > 0).any()
    expected = FGSM(linear).perturb(x, 0.1, target)
    estimator = LREstimator(seed=0)
    with patch_captum(estimator):
        got = FGSM(NoGrad()).perturb(x, 0.1, target)
    assert estimator.queries > 0
    assert torch.equal(got, expected)


class TokenModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(50, 8, padding_idx=1)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, ids):
        with torch.no_grad():
            return self.fc(torch.tanh(self.embedding(ids)).mean(1))


def test_layer_methods_under_the_switch_take_the_noise_scale_at_the_inputs():
    # Captum's LayerIntegratedGradients from an all-padding baseline (zero
    # embedding): without the activation at the inputs as the noise-scale
    # reference, each path point's noise follows its own activation, near
    # zero at the first points, where float32 rounding swamps the
    # differences. With it, the switch gives exactly what the LR class gives.
    torch.manual_seed(0)
    model = TokenModel().eval()
    ids = torch.tensor([[3, 7, 11, 2, 1, 1]])
    base = torch.ones_like(ids)
    kw = dict(baselines=base, target=1, n_steps=50)
    with patch_captum(LREstimator(seed=0)) as patch:
        switched = LayerIntegratedGradients(model, model.embedding).attribute(ids, **kw)
    own = LRLayerIntegratedGradients(
        model, model.embedding, estimator=LREstimator(seed=0)
    )
    assert torch.equal(switched, own.attribute(ids, **kw))
    # a sweep of the 6 x 8 activation per path point, plus one row for the
    # reference (the LR class also counts Captum's own forward passes)
    assert patch.queries == 50 * 2 * 6 * 8 + 1


def test_lr_classes_inside_the_switch_and_the_switch_inside_their_calls():
    net, black = models()
    before = snapshot()
    expected = LayerConductance(net, net.act).attribute(X, target=1, n_steps=3)
    mine, switched = LREstimator(seed=0), LREstimator(seed=0)
    with patch_captum(switched):
        got = LRLayerConductance(black, black.act, estimator=mine).attribute(
            X, target=1, n_steps=3
        )
    # the LR class's own estimator answered its call, not the switch's
    assert mine.queries > 0 and switched.queries == 0
    assert rel_err(got, expected) < RTOL
    assert all(snapshot()[k] is before[k] for k in before)

    handles = []

    def forward(x):  # a switch turned on from inside an LR call
        if not handles:
            handles.append(patch_captum())
        return black(x)

    LRLayerConductance(forward, black.act).attribute(X, target=1, n_steps=2)
    handles[0].undo()
    assert all(snapshot()[k] is before[k] for k in before)
