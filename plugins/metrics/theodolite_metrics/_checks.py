"""Clear errors for bad input: each names the task and the input it concerns."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import isolated


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


def check_rows(task: str, x: Any, name: str = "x", row_shape: Any = None) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, name, f"must be a non-empty array of rows (N, ...), got {shape}")
    if row_shape is not None and tuple(x.shape[1:]) != tuple(row_shape):
        raise bad_input(
            task,
            name,
            f"has rows of shape {list(x.shape[1:])}, but the classifier takes {list(row_shape)}",
        )
    return x


def check_labels(task: str, x: np.ndarray, y: Any, name: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(x):
        raise bad_input(task, name, f"must hold one label per row ({len(x)}), got {labels.shape}")
    return labels


def predict(classifier: ClassifierMixin, x: np.ndarray) -> np.ndarray:
    """The predicted class of each row (ART's PyTorch predict draws from torch's generator)."""
    with isolated():
        return np.argmax(classifier.predict(x), axis=1)
