"""LRMaskGradient(output_scale="logit"): the Banzhaf value (or semivalue) of
the log-odds of a probability output, from the same masked queries."""

import pytest
import torch

from captum_lr import Grid, LRMaskGradient


def classifier(weights: torch.Tensor, bias: float = -1.0):
    """A two-class softmax whose class-1 log-odds are additive in the groups
    kept (inputs of ones, baseline zeros): ``logit p_1 = z . w + bias``."""

    def forward(z: torch.Tensor) -> torch.Tensor:
        logit = z.double().flatten(1) @ weights + bias
        return torch.stack([torch.zeros_like(logit), logit], 1).softmax(1)

    return forward


def test_equals_the_default_on_the_log_odds_forward():
    w = torch.randn(6, generator=torch.Generator().manual_seed(0)).double()

    def cubed(z):  # probabilities whose log-odds are not additive
        return classifier(w)(z) ** 3

    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(1)).double()
    for keep_prob in (0.5, 0.7):
        ours = LRMaskGradient(cubed, seed=2)
        got = ours.attribute(
            x, target=1, n_samples=40, keep_prob=keep_prob, output_scale="logit"
        )
        ref = LRMaskGradient(lambda z: torch.logit(cubed(z), eps=1e-12), seed=2)
        want = ref.attribute(x, target=1, n_samples=40, keep_prob=keep_prob)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(ours.last_stderr, ref.last_stderr)
        assert ours.queries == ref.queries == 3 * 40


@pytest.mark.parametrize("keep_prob", [0.5, 0.8])
def test_additive_log_odds_are_exact_with_zero_stderr(keep_prob):
    w = torch.randn(8, generator=torch.Generator().manual_seed(3)).double()
    explainer = LRMaskGradient(classifier(w), seed=0)
    x = torch.ones(2, 8, dtype=torch.float64)
    # 48 pairs: six complete blocks of the sign design (8 pairs each)
    got = explainer.attribute(
        x, target=1, n_samples=96, keep_prob=keep_prob, output_scale="logit"
    )
    torch.testing.assert_close(got, w.expand(2, 8))
    assert explainer.last_stderr.abs().max() < 1e-6
    # on the probability scale the same output is not additive
    plain = explainer.attribute(x, target=1, n_samples=96, keep_prob=keep_prob)
    assert (plain - w).abs().max() > 0.05


def test_saturated_probabilities_give_finite_values_on_an_image():
    def forward(z):  # probabilities of exactly 0 and 1 on some queries
        p = (z.flatten(1).mean(1) > 0.6).double()
        return torch.stack([1 - p, p], 1)

    x = torch.ones(1, 3, 8, 8)
    explainer = LRMaskGradient(forward, seed=0)
    got = explainer.attribute(
        x, target=1, feature_mask=Grid(2), n_samples=32, output_scale="logit"
    )
    assert got.shape == x.shape and torch.isfinite(got).all()
    assert torch.isfinite(explainer.last_stderr).all()
    assert got.abs().max() <= 2 * torch.logit(torch.tensor(1 - 1e-12)).item()


def test_errors_say_what_to_change():
    x = torch.ones(1, 4, dtype=torch.float64)
    explainer = LRMaskGradient(lambda z: z.double().sum(1), seed=0)
    with pytest.raises(ValueError, match="output_scale must be one of"):
        explainer.attribute(x, n_samples=8, output_scale="log")
    with pytest.raises(TypeError, match="output_scale must be a str"):
        explainer.attribute(x, n_samples=8, output_scale=None)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        explainer.attribute(x, n_samples=8, output_scale="logit")  # sums up to 4
    nan = LRMaskGradient(lambda z: z.double().sum(1) * float("nan"), seed=0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        nan.attribute(x, n_samples=8, output_scale="logit")
