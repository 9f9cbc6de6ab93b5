"""Checks of the metrics' inputs on top of the SDK's (``theodolite.sdk.checks``), and
predictions that leave the global generators alone."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import checks, isolated


def check_classifier(task: str, classifier: Any, name: str = "classifier") -> ClassifierMixin:
    """An ART classifier."""
    expected = "an ART classifier (models.art_classifier)"
    return checks.check_type(task, name, classifier, ClassifierMixin, expected)


def predict(classifier: ClassifierMixin, x: np.ndarray) -> np.ndarray:
    """The predicted class of each row (ART's PyTorch predict draws from torch's generator)."""
    with isolated():
        return np.argmax(classifier.predict(x), axis=1)
