"""Metrics of privacy, extraction and poisoning attacks."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.metrics import roc_auc_score, roc_curve

from theodolite.sdk import task
from theodolite.sdk.checks import bad_input, check_labels, check_rows
from theodolite_metrics._checks import check_classifier, predict


class MembershipMetrics(TypedDict):
    auc: float
    advantage: float
    accuracy: float


class ExtractionMetrics(TypedDict):
    fidelity: float
    thief_accuracy: float
    victim_accuracy: float


class BackdoorMetrics(TypedDict):
    clean_accuracy: float
    attack_success_rate: float


@task
def membership_inference(scores: np.ndarray, is_member: np.ndarray) -> MembershipMetrics:
    """How well membership scores tell members from non-members: ROC AUC (0.5: chance), the
    membership advantage max(TPR - FPR) over thresholds (Yeom et al.; 0: none), and the
    accuracy at threshold 0.5.

    Args:
        scores: the attack's membership score per row (higher: more likely a member)
        is_member: 1 for members, 0 for non-members
    """
    name = "metrics.membership_inference"
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    truth = np.asarray(is_member).reshape(-1)
    if len(scores) != len(truth) or len(scores) == 0:
        raise bad_input(name, "is_member", f"has {len(truth)} rows, scores {len(scores)}")
    if not set(np.unique(truth).tolist()) == {0, 1}:
        raise bad_input(name, "is_member", "must hold both members (1) and non-members (0)")
    false_positive, true_positive, _ = roc_curve(truth, scores)
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "advantage": float(np.max(true_positive - false_positive)),
        "accuracy": float(np.mean((scores >= 0.5) == (truth == 1))),
    }


@task
def extraction(
    victim: ClassifierMixin, thief: ClassifierMixin, x: np.ndarray, y: np.ndarray
) -> ExtractionMetrics:
    """Fidelity of a stolen model (the share of rows where it agrees with the victim) and the
    accuracy of both, on rows the thief never queried.

    Args:
        victim: the original model
        thief: the extracted model
        x: held-out inputs
        y: their true labels
    """
    name = "metrics.extraction"
    check_classifier(name, victim, "victim")
    check_classifier(name, thief, "thief")
    x = check_rows(name, x, row_shape=victim.input_shape)
    y = check_labels(name, x, y)
    victim_says, thief_says = predict(victim, x), predict(thief, x)
    return {
        "fidelity": float(np.mean(victim_says == thief_says)),
        "thief_accuracy": float(np.mean(thief_says == y)),
        "victim_accuracy": float(np.mean(victim_says == y)),
    }


@task
def backdoor(
    classifier: ClassifierMixin,
    x_clean: np.ndarray,
    y_clean: np.ndarray,
    x_triggered: np.ndarray,
    target_label: int,
) -> BackdoorMetrics:
    """A backdoored model's accuracy on clean inputs and the backdoor's success rate: the
    share of triggered inputs (none from the target class) it labels ``target_label``.

    Args:
        classifier: the model trained on poisoned data
        x_clean: clean test inputs
        y_clean: their labels
        x_triggered: test inputs from other classes with the trigger (attacks.backdoor_trigger)
        target_label: the backdoor's target class
    """
    name = "metrics.backdoor"
    check_classifier(name, classifier)
    x_clean = check_rows(name, x_clean, name="x_clean", row_shape=classifier.input_shape)
    x_triggered = check_rows(
        name, x_triggered, name="x_triggered", row_shape=classifier.input_shape
    )
    y_clean = check_labels(name, x_clean, y_clean, name="y_clean")
    if not 0 <= target_label < classifier.nb_classes:
        raise bad_input(name, "target_label", f"must lie in [0, {classifier.nb_classes - 1}]")
    return {
        "clean_accuracy": float(np.mean(predict(classifier, x_clean) == y_clean)),
        "attack_success_rate": float(np.mean(predict(classifier, x_triggered) == target_label)),
    }
