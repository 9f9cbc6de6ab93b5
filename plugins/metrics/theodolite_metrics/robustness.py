"""Accuracy, robustness and perturbation size of ART classifiers."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import task
from theodolite.sdk.checks import bad_input, check_labels, check_rows
from theodolite_metrics._checks import check_classifier, predict

# A feature counts as changed for L0 when it moved by more than this (float32 round-off).
L0_TOLERANCE = 1e-6


class Norms(TypedDict):
    l0: float
    l2: float
    linf: float
    linf_max: float


class Robustness(TypedDict):
    clean_accuracy: float
    robust_accuracy: float
    attack_success_rate: float
    perturbation_l0: float
    perturbation_l2: float
    perturbation_linf: float


def norms(x_clean: np.ndarray, x_adv: np.ndarray) -> Norms:
    delta = (x_adv.astype(np.float64) - x_clean.astype(np.float64)).reshape(len(x_clean), -1)
    linf = np.abs(delta).max(axis=1)
    return {
        "l0": float(np.mean(np.sum(np.abs(delta) > L0_TOLERANCE, axis=1))),
        "l2": float(np.mean(np.linalg.norm(delta, axis=1))),
        "linf": float(np.mean(linf)),
        "linf_max": float(np.max(linf)),
    }


def _pair(task: str, x_clean: np.ndarray, x_adv: np.ndarray) -> None:
    check_rows(task, x_clean, name="x_clean")
    check_rows(task, x_adv, name="x_adv")
    if x_adv.shape != x_clean.shape:
        raise bad_input(task, "x_adv", f"has shape {x_adv.shape}, x_clean {x_clean.shape}")


@task
def accuracy(classifier: ClassifierMixin, x: np.ndarray, y: np.ndarray) -> float:
    """Share of rows the classifier labels correctly.

    Args:
        classifier: an ART classifier
        x: inputs
        y: their true labels
    """
    name = "metrics.accuracy"
    check_classifier(name, classifier)
    x = check_rows(name, x, row_shape=classifier.input_shape)
    y = check_labels(name, x, y)
    return float(np.mean(predict(classifier, x) == y))


@task
def perturbation_norms(x_clean: np.ndarray, x_adv: np.ndarray) -> Norms:
    """Size of the perturbation per row, averaged: L0 (features changed), L2, L-inf, and the
    largest L-inf of any row.

    Args:
        x_clean: the clean inputs
        x_adv: their perturbed versions, in the same order
    """
    _pair("metrics.perturbation_norms", x_clean, x_adv)
    return norms(x_clean, x_adv)


@task
def robustness(
    classifier: ClassifierMixin, x_clean: np.ndarray, x_adv: np.ndarray, y: np.ndarray
) -> Robustness:
    """Clean and robust accuracy, the attack's success rate (the share of correctly labelled
    rows it flips) and the mean L0, L2 and L-inf size of its perturbations.

    Args:
        classifier: the ART classifier under test (defended or not)
        x_clean: the clean inputs
        x_adv: adversarial versions of them, in the same order
        y: true labels
    """
    name = "metrics.robustness"
    check_classifier(name, classifier)
    _pair(name, x_clean, x_adv)
    check_rows(name, x_clean, name="x_clean", row_shape=classifier.input_shape)
    y = check_labels(name, x_clean, y)
    clean = predict(classifier, x_clean) == y
    robust = predict(classifier, x_adv) == y
    size = norms(x_clean, x_adv)
    return {
        "clean_accuracy": float(np.mean(clean)),
        "robust_accuracy": float(np.mean(robust)),
        "attack_success_rate": float(np.mean(~robust[clean])) if clean.any() else 0.0,
        "perturbation_l0": size["l0"],
        "perturbation_l2": size["l2"],
        "perturbation_linf": size["linf"],
    }


@task
def robust_accuracies(
    classifier: ClassifierMixin,
    x_clean: np.ndarray,
    y: np.ndarray,
    attacks: dict[str, np.ndarray],
) -> dict[str, float]:
    """Accuracy on clean inputs, under each attack, and in the worst case (a row counts only
    if the classifier is right on it under every attack): {"clean", <attack>..., "worst_case"}.

    Args:
        classifier: the ART classifier under test (defended or not)
        x_clean: the clean inputs
        y: their true labels
        attacks: attack name -> adversarial versions of x_clean, in the same order
    """
    name = "metrics.robust_accuracies"
    check_classifier(name, classifier)
    x_clean = check_rows(name, x_clean, name="x_clean", row_shape=classifier.input_shape)
    y = check_labels(name, x_clean, y)
    if not attacks:
        raise bad_input(name, "attacks", "is empty: name at least one attack's outputs")
    clean = predict(classifier, x_clean) == y
    result = {"clean": float(np.mean(clean))}
    worst = np.ones(len(y), dtype=bool)
    for attack, x_adv in attacks.items():
        if attack in ("clean", "worst_case"):
            raise bad_input(name, "attacks", f"may not name an attack {attack!r}")
        if not isinstance(x_adv, np.ndarray) or x_adv.shape != x_clean.shape:
            shape = getattr(x_adv, "shape", type(x_adv).__name__)
            raise bad_input(
                name, "attacks", f"{attack!r} has shape {shape}, x_clean {x_clean.shape}"
            )
        correct = predict(classifier, x_adv) == y
        result[attack] = float(np.mean(correct))
        worst &= correct
    result["worst_case"] = float(np.mean(worst))
    return result
