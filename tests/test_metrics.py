"""The evaluation metrics on functions whose curves are known."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_lr.metrics import cosine, deletion_insertion, mu_fidelity, spearman


def additive(weights):
    """score = sum of pixel values times weights (a linear model)."""

    def f(z):
        return (z * weights).flatten(1).sum(1)

    return f


def test_perfect_ranking_of_an_additive_model():
    # 1 x 4 x 4 image of ones, pixel j worth w_j: deleting in the order of w
    # removes the most first, so deletion falls fastest and insertion rises
    # fastest; reversing the map must do worse on both.
    w = torch.arange(16.0).view(1, 4, 4)
    x = torch.ones(1, 4, 4)
    zero = torch.zeros(1, 4, 4)
    f = additive(w)
    good = deletion_insertion(f, x, w, zero, zero, pixels_per_step=1)
    bad = deletion_insertion(f, x, -w, zero, zero, pixels_per_step=1)
    assert good.deletion_auc < bad.deletion_auc
    assert good.insertion_auc > bad.insertion_auc
    # exact areas: deletion after k steps keeps sum of the 16-k smallest weights
    total = w.sum()
    kept = torch.tensor([w.flatten().sort().values[: 16 - k].sum() for k in range(17)])
    assert good.deletion.tolist() == pytest.approx(kept.tolist())
    expected = float(torch.trapezoid(kept, torch.linspace(0, 1, 17)))
    assert good.deletion_auc == pytest.approx(expected)
    assert good.insertion.tolist()[-1] == pytest.approx(float(total))
    assert good.fraction[0] == 0 and good.fraction[-1] == 1


def test_steps_batching_and_partial_last_step():
    w = torch.rand(3, 5, 5)
    x = torch.rand(3, 5, 5)
    zero = torch.zeros(3, 5, 5)
    a = deletion_insertion(
        additive(w), x, w, zero, zero, pixels_per_step=4, batch_size=3
    )
    b = deletion_insertion(
        additive(w), x, w, zero, zero, pixels_per_step=4, batch_size=64
    )
    assert (
        torch.allclose(a.deletion, b.deletion) and len(a.deletion) == 8
    )  # ceil(25/4)+1
    assert a.fraction[-1] == 1


def test_constant_and_bad_maps_are_rejected():
    x = torch.ones(1, 3, 3)
    with pytest.raises(ValueError, match="constant"):
        deletion_insertion(additive(x), x, torch.zeros(1, 3, 3), x * 0, x * 0, 1)
    with pytest.raises(ValueError, match="constant"):
        mu_fidelity(additive(x), x, torch.ones(1, 3, 3), x * 0, grid=3)
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion(additive(x), x, torch.full((1, 3, 3), math.nan), x, x, 1)
    with pytest.raises(ValueError, match="shape"):
        deletion_insertion(additive(x), x, torch.ones(2, 3, 3), x, x, 1)


def test_mu_fidelity_is_one_for_the_exact_attribution_of_an_additive_model():
    w = torch.randn(2, 9, 9)
    x = torch.randn(2, 9, 9)
    gen = torch.Generator().manual_seed(0)
    exact = w * x  # removing a subset drops the score by its attribution sum
    assert mu_fidelity(
        additive(w), x, exact, torch.zeros_like(x), generator=gen
    ) == pytest.approx(1.0)
    noise = torch.randn(2, 9, 9, generator=gen)
    r = mu_fidelity(additive(w), x, noise, torch.zeros_like(x), generator=gen)
    assert abs(r) < 0.5


def test_cosine_and_spearman():
    a = torch.randn(3, 10)
    assert torch.allclose(cosine(a, 2 * a), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(spearman(a, a.exp()), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(spearman(a, -a), -torch.ones(3, dtype=torch.float64))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), step=st.integers(1, 7))
def test_true_ranking_is_optimal_for_a_positive_additive_model(seed, step):
    # with non-negative weights and x = 1, removing the largest weights first
    # gives the pointwise lowest deletion and highest insertion curves, so no
    # other map can beat the weights' own ranking on either area.
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(2, 6, 6, generator=gen)
    x = torch.ones(2, 6, 6)
    zero = torch.zeros(2, 6, 6)
    other = torch.randn(2, 6, 6, generator=gen)
    f = additive(w)
    best = deletion_insertion(f, x, w, zero, zero, pixels_per_step=step)
    rand = deletion_insertion(f, x, other, zero, zero, pixels_per_step=step)
    assert best.deletion_auc <= rand.deletion_auc + 1e-9
    assert best.insertion_auc >= rand.insertion_auc - 1e-9
    assert (best.deletion <= rand.deletion + 1e-6).all()
