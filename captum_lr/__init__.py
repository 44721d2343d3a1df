r"""captum-lr: Captum's gradient attributions for models that give no gradients."""

from captum_lr.attr import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.estimator import (
    ConstantOutputWarning,
    LREstimator,
    UnperturbedFeaturesWarning,
)
from captum_lr.priors import Grid, GroupPrior, SharedChannels

__version__ = "0.1.0"

__all__ = [
    "ConstantOutputWarning",
    "Grid",
    "GroupPrior",
    "SharedChannels",
    "LREstimator",
    "LRGradientShap",
    "LRInputXGradient",
    "LRIntegratedGradients",
    "LRSaliency",
    "UnperturbedFeaturesWarning",
]
