"""Checks of the defences' inputs on top of the SDK's (``theodolite.sdk.checks``): ART
classifiers, with clip values where a defence needs them, and labelled rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import checks
from theodolite.sdk.checks import bad_input


def check_classifier(task: str, classifier: Any, name: str = "classifier") -> ClassifierMixin:
    """An ART classifier."""
    expected = "an ART classifier (models.art_classifier)"
    return checks.check_type(task, name, classifier, ClassifierMixin, expected)


def clip_values(task: str, classifier: ClassifierMixin) -> tuple[float, float]:
    """The classifier's clip range, which the defence needs."""
    if classifier.clip_values is None:
        raise bad_input(task, "classifier", "has no clip values: wrap it with clip_min/clip_max")
    low, high = classifier.clip_values
    return float(np.min(low)), float(np.max(high))


def check_data(task: str, x: Any, y: Any, row_shape: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``row_shape`` (when given) and one label per row."""
    rows = checks.check_rows(task, x, row_shape=row_shape)
    return rows, checks.check_labels(task, rows, y)
