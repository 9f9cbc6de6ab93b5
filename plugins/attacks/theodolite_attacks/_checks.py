"""Checks of the attacks' inputs on top of the SDK's (``theodolite.sdk.checks``): ART
classifiers with the gradients an attack needs, rows inside the clip range, eps in range."""

from __future__ import annotations

from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassGradientsMixin, ClassifierMixin
from art.estimators.estimator import LossGradientsMixin

from theodolite.sdk import checks, isolated
from theodolite.sdk.checks import bad_input

NORMS: dict[str, float] = {"inf": np.inf, "1": 1.0, "2": 2.0}
ART_CLASSIFIER = "an ART classifier (models.art_classifier)"


def check_classifier(
    task: str,
    classifier: Any,
    *,
    gradients: bool = False,
    class_gradients: bool = False,
    name: str = "classifier",
) -> ClassifierMixin:
    """An ART classifier that gives the gradients the attack needs."""
    checks.check_type(task, name, classifier, ClassifierMixin, ART_CLASSIFIER)
    needs = (
        (gradients, LossGradientsMixin, "loss"),
        (class_gradients, ClassGradientsMixin, "class"),
    )
    for needed, mixin, kind in needs:
        if needed and not isinstance(classifier, mixin):
            raise bad_input(
                task,
                name,
                f"({type(classifier).__name__}) gives no {kind} gradients: use a differentiable "
                "model or a black-box attack (attacks.hop_skip_jump, attacks.square)",
            )
    return classifier


def clip_range(classifier: ClassifierMixin) -> tuple[float, float]:
    if classifier.clip_values is None:
        return -np.inf, np.inf
    low, high = classifier.clip_values
    return float(np.min(low)), float(np.max(high))


def check_inputs(task: str, classifier: ClassifierMixin, x: Any, name: str = "x") -> np.ndarray:
    """Rows whose shape the classifier takes, inside its clip range."""
    x = checks.check_rows(
        task,
        x,
        name=name,
        row_shape=classifier.input_shape,
        hint="data.reshape changes the view",
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
    """One whole-number label per row, each a class of the classifier."""
    labels = checks.check_labels(task, x, y, name=name, whole=True)
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
