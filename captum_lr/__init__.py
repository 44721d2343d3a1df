r"""captum-lr: Captum's gradient attributions for models that give no gradients."""

from captum_lr.attr import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.estimator import LREstimator, UnperturbedFeaturesWarning

__version__ = "0.1.0"

__all__ = [
    "LREstimator",
    "LRGradientShap",
    "LRInputXGradient",
    "LRIntegratedGradients",
    "LRSaliency",
    "UnperturbedFeaturesWarning",
]
