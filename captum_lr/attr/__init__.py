r"""The Captum face: Captum's attribution classes with the likelihood-ratio
estimator as their gradient engine (:mod:`~captum_lr.attr.inputs`), and region
maps from random masks (:mod:`~captum_lr.attr.mask`)."""

from captum_lr.attr.baselines import blur_baseline
from captum_lr.attr.inputs import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.attr.mask import LRMaskGradient

__all__ = [
    "LRGradientShap",
    "LRInputXGradient",
    "LRIntegratedGradients",
    "LRMaskGradient",
    "LRSaliency",
    "blur_baseline",
]
