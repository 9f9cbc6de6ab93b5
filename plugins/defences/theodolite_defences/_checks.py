"""Clear errors for bad input: each names the task and the input it concerns."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin


def bad_input(task: str, name: str, message: str) -> ValueError:
    return ValueError(f"{task}: input '{name}' {message}")


def check_classifier(task: str, classifier: Any, name: str = "classifier") -> ClassifierMixin:
    if not isinstance(classifier, ClassifierMixin):
        raise bad_input(
            task,
            name,
            f"must be an ART classifier (models.art_classifier), got {type(classifier).__name__}",
        )
    return classifier


def clip_values(task: str, classifier: ClassifierMixin) -> tuple[float, float]:
    if classifier.clip_values is None:
        raise bad_input(task, "classifier", "has no clip values: wrap it with clip_min/clip_max")
    low, high = classifier.clip_values
    return float(np.min(low)), float(np.max(high))


def check_data(task: str, x: Any, y: Any, row_shape: Any = None) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, "x", f"must be a non-empty array of rows (N, ...), got {shape}")
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(x):
        raise bad_input(task, "y", f"must hold one label per row ({len(x)}), got {labels.shape}")
    if row_shape is not None and tuple(x.shape[1:]) != tuple(row_shape):
        raise bad_input(
            task,
            "x",
            f"has rows of shape {list(x.shape[1:])}, but the classifier takes {list(row_shape)}",
        )
    return x, labels
