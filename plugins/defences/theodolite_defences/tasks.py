"""Defence tasks on IBM's adversarial-robustness-toolbox. The module names every task;
discovery finds them here."""

from theodolite_defences.preprocessors import feature_squeezing, jpeg_compression, spatial_smoothing
from theodolite_defences.training import Augmented, adversarial_training, gaussian_augmentation

__all__ = [
    "Augmented",
    "adversarial_training",
    "feature_squeezing",
    "gaussian_augmentation",
    "jpeg_compression",
    "spatial_smoothing",
]
