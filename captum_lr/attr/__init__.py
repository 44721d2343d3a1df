r"""The Captum face: Captum's attribution classes with the likelihood-ratio
estimator as their gradient engine (:mod:`~captum_lr.attr.inputs`), its layer
and neuron classes (:mod:`~captum_lr.attr.layer`,
:mod:`~captum_lr.attr.neuron`), and region maps from random masks
(:mod:`~captum_lr.attr.mask`)."""

from captum_lr.attr.baselines import blur_baseline
from captum_lr.attr.inputs import (
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRSaliency,
)
from captum_lr.attr.layer import (
    LRInternalInfluence,
    LRLayerConductance,
    LRLayerGradCam,
    LRLayerGradientShap,
    LRLayerGradientXActivation,
    LRLayerIntegratedGradients,
)
from captum_lr.attr.mask import LRMaskGradient
from captum_lr.attr.neuron import (
    LRNeuronConductance,
    LRNeuronGradient,
    LRNeuronGradientShap,
    LRNeuronIntegratedGradients,
)

__all__ = [
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
    "blur_baseline",
]
