"""Input preprocessors from ART, attached to a classifier: the result is a new ART classifier
that squeezes, smooths or compresses every input before predicting (and, for an attack that
targets it, passes gradients straight through the preprocessor: BPDA, an adaptive attack)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing
from art.defences.preprocessor.preprocessor import Preprocessor
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import task
from theodolite.sdk.checks import bad_input
from theodolite_defences._checks import check_classifier, clip_values


class KeepDtype(Preprocessor):
    """An ART preprocessor whose output keeps the input's dtype: ART's FeatureSqueezing (and
    JpegCompression) give float64, which a float32 PyTorch model refuses."""

    params: list[str] = []

    def __init__(self, inner: Preprocessor) -> None:
        super().__init__(
            is_fitted=True, apply_fit=inner.apply_fit, apply_predict=inner.apply_predict
        )
        self.inner = inner

    def __call__(self, x: np.ndarray, y: Any = None) -> tuple[np.ndarray, Any]:
        out, y = self.inner(x, y)
        return out.astype(x.dtype, copy=False), y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return self.inner.estimate_gradient(x, grad)

    def fit(self, x: np.ndarray, y: Any = None, **kwargs: Any) -> None:
        self.inner.fit(x, y, **kwargs)

    def __repr__(self) -> str:
        return f"KeepDtype({self.inner!r})"


def with_preprocessor(classifier: ClassifierMixin, preprocessor: Preprocessor) -> ClassifierMixin:
    """A copy of ``classifier`` (sharing its model) with ``preprocessor`` after its own ones."""
    defended = copy.copy(classifier)
    defended.preprocessing_operations = []  # the copy must not share the original's list
    existing = classifier.preprocessing_defences or []
    if isinstance(existing, Preprocessor):
        existing = [existing]
    defended.set_params(preprocessing_defences=[*existing, KeepDtype(preprocessor)])
    return defended


def _check_within(task: str, name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise bad_input(task, name, f"must lie in [{low}, {high}], got {value}")


def _image_layout(task: str, classifier: ClassifierMixin) -> bool:
    """Whether the classifier's images put channels first; refuse one that takes no images."""
    check_classifier(task, classifier)
    shape = classifier.input_shape
    if shape is None or len(shape) != 3:
        raise bad_input(
            task,
            "classifier",
            f"takes inputs of shape {list(shape or [])}; this defence needs images "
            "(channels, height, width): data.digits with view 'image' and a CNN",
        )
    return bool(getattr(classifier, "channels_first", True))


@task
def feature_squeezing(classifier: ClassifierMixin, bit_depth: int = 4) -> ClassifierMixin:
    """Feature squeezing (ART's FeatureSqueezing, Xu et al.): every input value is rounded to
    ``bit_depth`` bits before the classifier sees it.

    Args:
        classifier: the ART classifier to defend
        bit_depth: bits kept per value, in [1, 64]
    """
    name = "defences.feature_squeezing"
    check_classifier(name, classifier)
    _check_within(name, "bit_depth", bit_depth, 1, 64)
    squeeze = FeatureSqueezing(clip_values=clip_values(name, classifier), bit_depth=bit_depth)
    return with_preprocessor(classifier, squeeze)


@task
def spatial_smoothing(classifier: ClassifierMixin, window_size: int = 3) -> ClassifierMixin:
    """Spatial smoothing (ART's SpatialSmoothing): a median filter over each image.

    Args:
        classifier: the ART classifier to defend; it must take images (C, H, W)
        window_size: side of the median filter's window, in [1, 5]
    """
    name = "defences.spatial_smoothing"
    channels_first = _image_layout(name, classifier)
    _check_within(name, "window_size", window_size, 1, 5)
    smooth = SpatialSmoothing(
        window_size=window_size,
        channels_first=channels_first,
        clip_values=clip_values(name, classifier),
    )
    return with_preprocessor(classifier, smooth)


@task
def jpeg_compression(classifier: ClassifierMixin, quality: int = 50) -> ClassifierMixin:
    """JPEG compression (ART's JpegCompression): each image is saved as a JPEG of the given
    quality and read back.

    Args:
        classifier: the ART classifier to defend; it must take images (C, H, W)
        quality: JPEG quality, in [1, 95]
    """
    name = "defences.jpeg_compression"
    channels_first = _image_layout(name, classifier)
    _check_within(name, "quality", quality, 1, 95)
    compress = JpegCompression(
        clip_values=clip_values(name, classifier),
        quality=quality,
        channels_first=channels_first,
        apply_fit=False,
        apply_predict=True,
    )
    return with_preprocessor(classifier, compress)
