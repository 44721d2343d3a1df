r"""Named estimator settings: the paper's and the package's, by name.

``LREstimator(**PRESETS[name], n_samples=n)`` builds one; :func:`make_estimator`
does that and checks the name.
"""

from __future__ import annotations

from typing import Any

from captum_lr.estimator import LREstimator

PRESETS: dict[str, dict[str, Any]] = {
    # The package default: see LREstimator.
    "default": {},
    # The paper's plain likelihood-ratio estimator: i.i.d. Gaussian noise on the
    # whole input, f(x) as the control variate.
    "paper-lr": {"design": "gaussian", "antithetic": False},
    # The paper's blockwise likelihood ratio: Gaussian noise inside one random
    # square block per sample (a quarter of the side of a 112 px image).
    "paper-blr": {"design": "gaussian", "antithetic": False, "block": 28},
}


def make_estimator(name: str, **overrides: Any) -> LREstimator:
    r"""
    Builds the :class:`~captum_lr.LREstimator` of a named preset.

    Args:

        name (str): A key of :data:`PRESETS`.
        **overrides: Keyword arguments of :class:`~captum_lr.LREstimator` that
                    replace the preset's (e.g. ``n_samples``, ``seed``).

    Returns:
        *LREstimator*: the configured estimator.

    Examples::

        >>> est = make_estimator("paper-blr", n_samples=500, seed=0)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    return LREstimator(**{**PRESETS[name], **overrides})
