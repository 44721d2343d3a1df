r"""captum-lr: Captum's gradient attributions for models that give no gradients."""

from captum_lr.attr import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRInternalInfluence,
    LRLayerConductance,
    LRLayerGradCam,
    LRLayerGradientShap,
    LRLayerGradientXActivation,
    LRLayerIntegratedGradients,
    LRMaskGradient,
    LRNeuronConductance,
    LRNeuronGradient,
    LRNeuronGradientShap,
    LRNeuronIntegratedGradients,
    LRSaliency,
    blur_baseline,
)
from captum_lr.estimation.budget import estimate_queries
from captum_lr.estimation.diagnostics import (
    ConstantOutputWarning,
    LowAccuracyWarning,
    UnperturbedFeaturesWarning,
)
from captum_lr.estimation.estimator import LREstimator
from captum_lr.estimation.masking import ConstantMaskOutputWarning
from captum_lr.estimation.presets import PRESETS, make_estimator
from captum_lr.estimation.priors import Grid, GroupPrior, SharedChannels
from captum_lr.estimation.surrogate import Surrogate
from captum_lr.estimation.uncertainty import attribute_with_stderr, samples_for_cosine
from captum_lr.patch import CaptumPatch, NeedsAutogradError, patch_captum
from captum_lr.remote.blackbox import (
    BlackBox,
    MalformedResponseError,
    PermanentError,
    QueryBudgetExceeded,
    TransientError,
)

__version__ = "0.1.0"

__all__ = [
    "BlackBox",
    "CaptumPatch",
    "NeedsAutogradError",
    "MalformedResponseError",
    "PermanentError",
    "QueryBudgetExceeded",
    "TransientError",
    "estimate_queries",
    "ConstantMaskOutputWarning",
    "ConstantOutputWarning",
    "Grid",
    "GroupPrior",
    "SharedChannels",
    "Surrogate",
    "LREstimator",
    "LowAccuracyWarning",
    "LRGradientShap",
    "LRInputXGradient",
    "LRIntegratedGradients",
    "LRInternalInfluence",
    "LRLayerConductance",
    "LRLayerGradCam",
    "LRLayerGradientShap",
    "LRLayerGradientXActivation",
    "LRLayerIntegratedGradients",
    "LRMaskGradient",
    "LRNeuronConductance",
    "LRNeuronGradient",
    "LRNeuronGradientShap",
    "LRNeuronIntegratedGradients",
    "LRSaliency",
    "PRESETS",
    "UnperturbedFeaturesWarning",
    "attribute_with_stderr",
    "blur_baseline",
    "make_estimator",
    "patch_captum",
    "samples_for_cosine",
]
