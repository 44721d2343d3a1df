"""The estimator's error contract, its query accounting and its devices."""

import pytest
import torch
from captum._utils.gradient import compute_gradients
from captum.attr import IntegratedGradients
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr import LREstimator, LRIntegratedGradients, LRSaliency
from captum_lr.estimation.presets import FIXED_SAMPLES, PRESETS, make_estimator

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)


def lin(x):
    return x.flatten(1) @ torch.ones(x[0].numel(), 3, dtype=x.dtype)


def test_multiple_outputs_without_target_raise_captums_assertion():
    x = torch.randn(2, 4)
    with pytest.raises(AssertionError) as captum_err:
        compute_gradients(lambda z: z * 1.0, x.clone().requires_grad_())
    with pytest.raises(AssertionError) as ours:
        LREstimator()(lin, x)
    assert str(ours.value) == str(captum_err.value)
    with pytest.raises(AssertionError, match="Target not provided"):
        LRIntegratedGradients(lin).attribute(x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "n_samples must be at least 1"),
        (dict(n_samples=2.5), "n_samples must be an int"),
        (dict(sigma=0.0), "sigma must be a positive finite"),
        (dict(sigma=-1.0), "sigma must be a positive finite"),
        (dict(sigma=float("nan")), "sigma must be a positive finite"),
        (dict(sigma="big"), "sigma must be a positive float or 'auto'"),
        (dict(design="sobol"), "design must be one of"),
        (dict(block=0), "block must be None, a positive int"),
        (dict(block=(2, -1)), "block must be None, a positive int"),
        (dict(block=[]), "empty list"),
        (dict(block=[2, 0]), "a non-empty list of those"),
        (dict(block=2, feature_mask=torch.zeros(3)), "not both"),
        (dict(max_batch_size=0), "max_batch_size must be a positive int"),
        (dict(seed=1.5), "seed must be None or an int"),
    ],
)
def test_invalid_arguments_say_what_to_change(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LREstimator(**kwargs)


def test_block_larger_than_input():
    with pytest.raises(ValueError, match="larger than input 0"):
        LREstimator(block=(9, 2))(lin, torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="larger than input 0"):
        LREstimator(block=20, n_samples=4)(lin, torch.randn(1, 10), 0)
    with pytest.raises(ValueError, match="different numbers of dimensions"):
        LREstimator(block=[2, (3,)], n_samples=4)(lin, torch.randn(1, 3, 8, 8), 0)


def test_design_needing_whole_inputs_rejects_blocks():
    with pytest.raises(ValueError, match="cannot be combined"):
        LREstimator(design="orthogonal", block=2, n_samples=4)(
            lin, torch.randn(1, 3, 8, 8), 0
        )


def test_forward_with_wrong_number_of_rows():
    with pytest.raises(ValueError, match="returned 1 rows for a batch of"):
        LREstimator(n_samples=4)(lambda z: z[:1].sum(1), torch.randn(3, 5))
    with pytest.raises(ValueError, match="returned a scalar"):
        LREstimator(n_samples=4)(lambda z: z.sum(), torch.randn(3, 5))


def test_nan_and_inf_outputs_are_errors_not_maps():
    def bad(z):
        out = z.sum(1)
        out[0] = float("nan")
        return out

    with pytest.raises(ValueError, match="NaN or Inf"):
        LREstimator(n_samples=4)(bad, torch.randn(3, 5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        LREstimator(n_samples=4)(lambda z: z.sum(1) / 0.0, torch.randn(3, 5))


def test_bad_inputs_and_targets():
    with pytest.raises(ValueError, match="floating-point inputs"):
        LREstimator()(lin, torch.ones(2, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="share the batch dimension"):
        LREstimator()(lambda a, b: a.sum(1), (torch.ones(2, 3), torch.ones(3, 3)))
    with pytest.raises(ValueError, match="one target per row"):
        LREstimator()(lin, torch.ones(2, 3), [0, 1, 2])
    with pytest.raises(ValueError, match="it must match the batch"):
        LREstimator()(lambda a, b: a.sum(1), torch.ones(2, 3), None, torch.ones(5))


def test_queries_are_counted_and_batched():
    calls = []

    def f(z):
        calls.append(z.shape[0])
        return z.sum(1)

    x = torch.randn(3, 50)
    est = LREstimator(n_samples=10, antithetic=True, max_batch_size=7)
    est(f, x)
    assert max(calls) <= 7
    assert est.queries == sum(calls) == est.queries_for(x) == 3 * 10 * 2
    calls.clear()
    one_sided = LREstimator(n_samples=10, antithetic=False, max_batch_size=7)
    one_sided(f, x)
    assert one_sided.queries == sum(calls) == one_sided.queries_for(x) == 3 * 11
    # low dimension: a single coordinate sweep, whatever n_samples is
    small = LREstimator(n_samples=500)
    small(f, torch.randn(2, 6))
    assert small.queries == small.queries_for(torch.randn(2, 6)) == 2 * 6 * 2


def test_integrated_gradients_query_cost():
    x = torch.randn(2, 40)
    est = LREstimator(n_samples=8)
    LRIntegratedGradients(lambda z: z.sum(1), estimator=est).attribute(x, n_steps=5)
    assert est.queries == 5 * est.queries_for(x)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        make_estimator("nope")
    for name in PRESETS:
        kw = {} if name in FIXED_SAMPLES else {"n_samples": 3}
        assert isinstance(make_estimator(name, **kw), LREstimator)
    with pytest.raises(ValueError, match="fixes n_samples"):
        make_estimator("grid14", n_samples=10)
    # grid14 is one sweep of its 196 cells plus f(x)
    assert make_estimator("grid14").queries_for(torch.zeros(1, 3, 112, 112)) == 197


def test_progress_bar_does_not_change_results(capsys):
    x = torch.randn(2, 30)
    a = LREstimator(n_samples=5, seed=1, show_progress=True)(lin, x, 0)
    b = LREstimator(n_samples=5, seed=1)(lin, x, 0)
    assert torch.equal(a[0], b[0])
    assert "LR queries" in capsys.readouterr().err


def test_half_precision_inputs_and_outputs_keep_their_dtype():
    x = torch.randn(2, 3, 4, 4).to(torch.bfloat16)
    (g,) = LREstimator(n_samples=8, seed=0)(lambda z: z.float().flatten(1).sum(1), x)
    assert g.dtype == torch.bfloat16 and torch.isfinite(g).all()


@requires_cuda
def test_cuda_inputs_and_model_match_cpu():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 64, 3),
    ).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)

    def fwd(m):
        def f(z):
            with torch.no_grad():
                return m(z)

        return f

    ref = IntegratedGradients(net).attribute(x, target=1, n_steps=6)
    gpu = net.cuda()
    out = LRIntegratedGradients(fwd(gpu)).attribute(x.cuda(), target=1, n_steps=6)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref, rtol=2e-3, atol=2e-3 * ref.abs().max())
    est = LREstimator(n_samples=64, seed=0, block=3)
    sal = LRSaliency(fwd(gpu), est).attribute(x.cuda(), target=1)
    assert sal.device.type == "cuda" and torch.isfinite(sal).all()


@requires_cuda
def test_outputs_on_another_device_are_moved_to_the_inputs_device():
    x = torch.randn(2, 10, device="cuda")
    (g,) = LREstimator(n_samples=4)(lambda z: z.sum(1).cpu(), x)
    assert g.device.type == "cuda"


def test_out_of_range_targets_are_value_errors():
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="does not index the forward output"):
        LREstimator(n_samples=4)(lin, x, 5)
    with pytest.raises(ValueError, match="does not index the forward output"):
        LREstimator(n_samples=4)(lin, x, torch.tensor([0, 7]))


def test_seed_is_the_same_in_a_fresh_process():
    import subprocess
    import sys

    code = (
        "import torch; from captum_lr import LREstimator;"
        "x = torch.arange(40.).view(2, 20);"
        "g = LREstimator(n_samples=3, seed=5)(lambda z: z.sum(1) + z[:, 0] ** 2, x)[0];"
        "print(repr(g.flatten().tolist()))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h), "PATH": ""},
        ).stdout
        for h in (1, 2)
    ]
    assert runs[0] == runs[1] and runs[0].startswith("[")


def test_integer_and_boolean_outputs_are_refused_with_the_fix():
    """A forward that returns class indices would give a map of the index."""
    x = torch.randn(2, 3, 4)

    def argmax(z):
        return z.flatten(1)[:, :3].argmax(1)

    for fwd in (argmax, lambda z: z.flatten(1).sum(1) > 0):
        with pytest.raises(TypeError, match="LabelIndicator"):
            LREstimator(n_samples=8)(fwd, x)
    with pytest.raises(TypeError, match="predict_proba"):
        LRSaliency(argmax).attribute(x)


def test_nan_in_the_input_is_blamed_on_the_input_not_the_model():
    calls = []

    def f(z):
        calls.append(z.shape[0])
        return z.sum(1)

    x = torch.tensor([[float("nan"), 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"input 0 has 1 NaN or infinite"):
        LREstimator(n_samples=4)(f, x)
    with pytest.raises(ValueError, match="nan_to_num"):
        compute = IntegratedGradients(f)
        compute.gradient_func = LREstimator(n_samples=4)
        compute.attribute(torch.tensor([[float("inf"), 1.0]]))
    assert not calls  # nothing was sent


def test_meta_tensors_get_a_clear_error():
    with pytest.raises(ValueError, match="meta tensor"):
        LREstimator(n_samples=4)(lambda z: z.sum(1), torch.ones(2, 3, device="meta"))


def test_low_expected_cosine_warns_once_with_the_budget_that_reaches_0_9():
    from captum_lr import LowAccuracyWarning

    x = torch.randn(2, 3, 32, 32)

    def f(z):
        return z.flatten(1).sum(1)

    est = LREstimator(n_samples=128, seed=0)
    with pytest.warns(LowAccuracyWarning, match=r"n_samples=\d+ reaches 0.9") as rec:
        est(f, x)
        est(f, x)
    assert len([w for w in rec if w.category is LowAccuracyWarning]) == 1
    assert (est.last_expected_cosine < 0.5).all()
    needed = int(str(rec[0].message).split("n_samples=")[2].split()[0])
    est_big = LREstimator(n_samples=needed, seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", LowAccuracyWarning)
        est_big(f, x)  # at the advised budget: no warning
    assert float(est_big.last_expected_cosine.median()) >= 0.9 - 1e-6


@pytest.mark.parametrize(
    "kwargs, figure",
    [
        (dict(design="orthogonal", n_samples=100), (100 / 400) ** 0.5),
        (dict(design="gaussian", n_samples=100), (100 / 501) ** 0.5),
        (dict(n_samples=400), 1.0),  # a sweep: exact, no warning
    ],
)
def test_expected_cosine_is_the_designs_own_figure(kwargs, figure):
    import warnings

    from captum_lr import LowAccuracyWarning

    est = LREstimator(seed=0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if figure < 0.5:  # warned, as the other test checks
            warnings.simplefilter("ignore", LowAccuracyWarning)
        est(lambda z: z.sum(1), torch.randn(3, 400))
    torch.testing.assert_close(
        est.last_expected_cosine, torch.full((3,), figure), rtol=1e-6, atol=0
    )


def test_expected_cosine_matches_the_measured_one_on_images():
    """The channel strata's figure, from the probes, against the cosine it
    reaches on linear functions with correlated and independent channels."""
    for rho in (0.0, 0.9):
        gen = torch.Generator().manual_seed(int(rho * 10))
        shared = torch.randn(1, 16, 16, generator=gen, dtype=torch.float64)
        own = torch.randn(3, 16, 16, generator=gen, dtype=torch.float64)
        w = rho**0.5 * shared + (1 - rho) ** 0.5 * own
        x = torch.zeros(300, 3, 16, 16, dtype=torch.float64)
        est = LREstimator(n_samples=200, sigma=1.0, seed=1, shared_noise=False)
        (g,) = est(lambda z, w=w: (z * w).flatten(1).sum(1), x)
        got = torch.nn.functional.cosine_similarity(g.flatten(1), w.reshape(1, -1))
        expected = est.last_expected_cosine
        assert abs(float(got.mean() / expected.mean()) - 1) < 0.1, (
            rho,
            float(got.mean()),
            float(expected.mean()),
        )


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(2, 400),
    n=st.integers(1, 400),
    design=st.sampled_from(["orthogonal", "gaussian", "auto"]),
)
def test_the_accuracy_warning_follows_the_designs_figure(d, n, design):
    """Warned exactly when the design's own expected cosine is below 0.5; an
    exact sweep (auto with d <= n) never warns."""
    import warnings

    from captum_lr import LowAccuracyWarning

    est = LREstimator(n_samples=n, design=design, seed=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        est(lambda z: z.sum(1), torch.randn(2, d))
    warned = any(w.category is LowAccuracyWarning for w in seen)
    if design == "auto" and d <= n:
        assert not warned and (est.last_expected_cosine == 1).all()
        return
    k = min(n, d)
    figure = (k / d) ** 0.5 if design != "gaussian" else (n / (n + d + 1)) ** 0.5
    torch.testing.assert_close(
        est.last_expected_cosine, torch.full((2,), figure), rtol=1e-6, atol=0
    )
    assert warned == (figure < 0.5)
