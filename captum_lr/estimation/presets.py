r"""Named estimator settings: the paper's and the package's, by name.

``LREstimator(**PRESETS[name], n_samples=n)`` builds one; :func:`make_estimator`
does that and checks the name.
"""

from __future__ import annotations

from typing import Any

from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.priors import Grid, SharedChannels

PRESETS: dict[str, dict[str, Any]] = {
    # The package default: see LREstimator (for one RGB image input of >= 48 px
    # at >= 960 samples per row: frequency strata, design="orthogonal-frequency";
    # smaller images or budgets: channel strata, design="orthogonal-channels").
    "default": {},
    # Orthogonal directions over all coordinates (the previous default, and
    # for non-image inputs): expected cosine sqrt(n/d), no prior.
    "orthogonal": {"design": "orthogonal"},
    # The paper's plain likelihood-ratio estimator: i.i.d. Gaussian noise on the
    # whole input, f(x) as the control variate.
    "paper-lr": {"design": "gaussian", "antithetic": False},
    # The paper's blockwise likelihood ratio: Gaussian noise inside one random
    # square block per sample (a quarter of the side of a 112 px image).
    "paper-blr": {"design": "gaussian", "antithetic": False, "block": 28},
    # Multi-scale blocks: the paper's blockwise computation with square blocks
    # of 7, 14 or 28 pixels drawn at random per sample (all fit a 32 px image).
    "multiscale": {"design": "gaussian", "antithetic": False, "block": [7, 14, 28]},
    # Antithetic orthogonal directions: bias O(sigma^2), half the directions.
    "antithetic": {"design": "orthogonal", "antithetic": True},
    # Noise shared across colour channels: the channel-mean gradient.
    "channels": {"prior": SharedChannels()},
    # Coarse region map: the exact gradient projected on a 14 x 14 grid of
    # cells shared across channels, one sweep of 196 cells + f(x) = 197 rows per
    # gradient (n_samples is fixed by the grid). With LRIntegratedGradients and
    # captum_lr.attr.baselines.blur_baseline this is the most faithful gradient map
    # measured (benchmarks/README.md); LRMaskGradient's region map, from large
    # perturbations, is more faithful still.
    "grid14": {"prior": Grid(14), "n_samples": 196, "antithetic": False},
}

FIXED_SAMPLES = frozenset({"grid14"})
r"""Presets whose ``n_samples`` is part of the setting (spend a budget on more
path steps or noise-tunnel samples instead)."""


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
    if name in FIXED_SAMPLES and "n_samples" in overrides:
        raise ValueError(
            f"preset {name!r} fixes n_samples (one sweep of its grid); spend a "
            "larger budget on n_steps or nt_samples instead."
        )
    return LREstimator(**{**PRESETS[name], **overrides})
