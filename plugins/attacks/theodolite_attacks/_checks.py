"""Clear errors for bad input: each names the task and the input it concerns."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassGradientsMixin, ClassifierMixin
from art.estimators.estimator import LossGradientsMixin

from theodolite.sdk import isolated

NORMS: dict[str, float] = {"inf": np.inf, "1": 1.0, "2": 2.0}


def bad_input(task: str, name: str, message: str) -> ValueError:
    return ValueError(f"{task}: input '{name}' {message}")


def check_classifier(
    task: str,
    classifier: Any,
    *,
    gradients: bool = False,
    class_gradients: bool = False,
    name: str = "classifier",
) -> ClassifierMixin:
    if not isinstance(classifier, ClassifierMixin):
        raise bad_input(
            task,
            name,
            f"must be an ART classifier (models.art_classifier), got {type(classifier).__name__}",
        )
    if gradients and not isinstance(classifier, LossGradientsMixin):
        raise bad_input(
            task,
            name,
            f"({type(classifier).__name__}) gives no loss gradients: use a "
            "differentiable model or a black-box attack (attacks.hop_skip_jump, attacks.square)",
        )
    if class_gradients and not isinstance(classifier, ClassGradientsMixin):
        raise bad_input(
            task,
            name,
            f"({type(classifier).__name__}) gives no class gradients: use a "
            "differentiable model or a black-box attack (attacks.hop_skip_jump, attacks.square)",
        )
    return classifier


def clip_range(classifier: ClassifierMixin) -> tuple[float, float]:
    if classifier.clip_values is None:
        return -np.inf, np.inf
    low, high = classifier.clip_values
    return float(np.min(low)), float(np.max(high))


def check_inputs(task: str, classifier: ClassifierMixin, x: Any, name: str = "x") -> np.ndarray:
    """Rows whose shape the classifier takes, inside its clip range."""
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, name, f"must be a non-empty array of rows (N, ...), got {shape}")
    expected = classifier.input_shape
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise bad_input(
            task,
            name,
            f"has rows of shape {list(x.shape[1:])}, but the classifier takes "
            f"{list(expected)} (data.reshape changes the view)",
        )
    low, high = clip_range(classifier)
    if not np.all(np.isfinite(x)) or x.min() < low - 1e-6 or x.max() > high + 1e-6:
        raise bad_input(
            task,
            name,
            f"has values in [{x.min():g}, {x.max():g}], outside the classifier's clip "
            f"range [{low:g}, {high:g}]",
        )
    return x


def check_labels(task: str, x: np.ndarray, y: Any, nb_classes: int, name: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(x):
        raise bad_input(
            task, name, f"must hold one label per row ({len(x)}), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise bad_input(task, name, "must hold whole-number class labels")
        labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= nb_classes):
        raise bad_input(task, name, f"must hold labels in [0, {nb_classes - 1}]")
    return labels


def norm_value(task: str, norm: str) -> float:
    if norm not in NORMS:
        raise bad_input(task, "norm", f"must be one of {', '.join(NORMS)}, got {norm!r}")
    return NORMS[norm]


def max_eps(classifier: ClassifierMixin, x: np.ndarray, norm: float) -> float:
    """The largest perturbation that can matter: the clip range, in the attack's norm."""
    low, high = clip_range(classifier)
    span = high - low
    features = int(np.prod(x.shape[1:]))
    return float(span if norm == np.inf else span * features ** (1.0 / norm))


def check_eps(
    task: str,
    classifier: ClassifierMixin,
    x: np.ndarray,
    eps: float,
    norm: float,
    name: str = "eps",
) -> float:
    bound = max_eps(classifier, x, norm)
    if not np.isfinite(eps) or not 0.0 <= eps <= bound:
        label = "L-inf" if norm == np.inf else f"L{int(norm)}"
        raise bad_input(task, name, f"must lie in [0, {bound:g}] for the {label} norm, got {eps}")
    return float(eps)


def check_positive_int(task: str, name: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        raise bad_input(task, name, f"must be >= {minimum}, got {value}")
    return int(value)


def predicted_labels(classifier: ClassifierMixin, x: np.ndarray) -> np.ndarray:
    """The predicted class of each row (ART's PyTorch predict draws from torch's generator)."""
    with isolated():
        return np.argmax(classifier.predict(x), axis=1)
