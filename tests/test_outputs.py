"""Turning labels and text into numbers: LabelIndicator, DecisionMargin, TextScore."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from captum_lr import LREstimator, LRSaliency
from captum_lr.remote.blackbox import BlackBox, MalformedResponseError
from captum_lr.remote.outputs import (
    DecisionMargin,
    EmbeddingSimilarity,
    LabelIndicator,
    TextScore,
    exact_match,
    token_overlap,
)


def test_label_indicator_one_hot_by_index_or_name():
    np.testing.assert_array_equal(
        LabelIndicator(3)([2, np.int64(0), 1.0]),
        [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    )
    named = LabelIndicator(classes=["cat", "dog"])
    np.testing.assert_array_equal(named(["dog", "cat"]), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="outside"):
        LabelIndicator(3)([3])
    with pytest.raises(TypeError, match="integer class index"):
        LabelIndicator(3)(["cat"])
    with pytest.raises(ValueError, match="not one of the classes"):
        named(["cow"])
    with pytest.raises(TypeError, match="num_classes"):
        LabelIndicator()


def test_label_indicator_turns_a_classifiers_predict_into_indicators():
    linear_model = pytest.importorskip("sklearn.linear_model")
    data = np.random.default_rng(0).normal(size=(60, 2))
    clf = linear_model.LogisticRegression().fit(
        data, np.where(data[:, 0] > 0, "right", "left")
    )
    x = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    assert BlackBox(clf.predict, output=LabelIndicator(classes=clf.classes_))(
        x
    ).tolist() == [[0.0, 1.0], [1.0, 0.0]]  # columns: clf.classes_ (left, right)
    # Mistakes say what to pass instead.
    with pytest.raises(MalformedResponseError, match=r"pass classes=.*clf.classes_"):
        BlackBox(clf.predict, output=LabelIndicator(2))(x)
    with pytest.raises(TypeError, match=r"classes=\[False, True\]"):
        LabelIndicator(2)([True])
    with pytest.raises(ValueError, match=r"raise num_classes, or pass classes="):
        LabelIndicator(2)([2])
    with pytest.raises(ValueError, match=r"\['a', 'b', .*, 'j', \.\.\.\]"):
        LabelIndicator(classes="abcdefghijkl")(["z"])


def test_label_indicator_through_blackbox_gives_the_smoothed_class_probability():
    """For a linear decision rule 1[w.x > 0] and Gaussian noise, the smoothed
    indicator is Phi(w.x / (sigma |w|)), whose gradient is parallel to w: the
    estimated map must point along w."""
    w = torch.tensor([2.0, -1.0, 0.5, 0.0])

    def label_api(x):
        return (np.asarray(x) @ w.numpy() > 0).astype(int).tolist()

    api = BlackBox(label_api, output=LabelIndicator(2))
    est = LREstimator(n_samples=2000, sigma=0.5, seed=0, design="gaussian")
    x = torch.tensor([[0.1, 0.1, 0.0, 0.3]])
    g = LRSaliency(api, estimator=est).attribute(x, target=1, abs=False)
    cos = torch.nn.functional.cosine_similarity(g.flatten(), w, 0)
    # n = 2000 Gaussian directions in d = 4: E cos ~ sqrt(n/(n+d+1)) for a
    # linear f; the indicator's estimate is noisier, 0.9 leaves a wide margin.
    assert cos > 0.9


def test_decision_margin_is_signed_distance_in_score_space():
    m = DecisionMargin()([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(m, [[0.3, -0.3, -0.5], [-0.4, -0.4, 0.4]])
    logm = DecisionMargin(log=True)([[0.5, 0.25, 0.25]])
    np.testing.assert_allclose(logm, [[np.log(2), -np.log(2), -np.log(2)]])
    with pytest.raises(ValueError, match="at least 2"):
        DecisionMargin()([[1.0]])


def test_text_scorers():
    assert exact_match("A  Cat", "a cat") == 1.0 and exact_match("a cat", "cat") == 0.0
    assert token_overlap("a photo of a cat", "a photo of a cat") == 1.0
    assert token_overlap("dog", "a cat") == 0.0
    # common = {a, cat} = 2 tokens; precision 2/2, recall 2/3 -> F1 0.8
    assert token_overlap("a cat", "a black cat") == pytest.approx(0.8)
    score = TextScore("a bright photo of a cat")
    np.testing.assert_allclose(
        score(["a bright photo of a cat", "a dark photo of a dog"]), [1.0, 4 / 6]
    )  # common tokens: a, a, photo, of
    custom = TextScore("x", scorer=lambda a, r: float(len(a)))
    assert custom(["ab"]).tolist() == [2.0]
    with pytest.raises(ValueError, match="scorer must be one of"):
        TextScore("x", scorer="bleu")
    with pytest.raises(TypeError, match="text answers"):
        score([3])
    bb = BlackBox(lambda x: [3] * len(x), output=score)
    with pytest.raises(MalformedResponseError, match="batch 1 of 1"):
        bb(torch.randn(2, 2))


def test_embedding_similarity_loads_offline_from_the_bundled_model():
    start = time.perf_counter()
    sim = EmbeddingSimilarity()
    scores = sim.batch(
        ["a photo of a cat", "a picture of a kitten", "stock market report"],
        "a photo of a cat",
    )
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[0] > scores[1] > scores[2]
    assert TextScore("a photo of a cat", scorer=sim)(["a photo of a cat"])[0] > 0.99
    assert time.perf_counter() - start < 60
