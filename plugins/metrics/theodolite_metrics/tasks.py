"""Metric tasks: accuracy and robustness, perturbation norms, membership inference,
extraction and backdoor metrics. The module names every task; discovery finds them here."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sklearn.base import BaseEstimator

from theodolite.sdk import task
from theodolite_metrics.robustness import (  # noqa: F401
    Norms,
    Robustness,
    accuracy,
    perturbation_norms,
    robust_accuracies,
    robustness,
)
from theodolite_metrics.security import (  # noqa: F401
    BackdoorMetrics,
    ExtractionMetrics,
    MembershipMetrics,
    backdoor,
    extraction,
    membership_inference,
)


class Evaluation(TypedDict):
    eps: float
    accuracy: float
    attack_success_rate: float
    perturbation_linf: float


@task
def evaluate(
    model: BaseEstimator,
    x: np.ndarray,
    y: np.ndarray,
    x_clean: np.ndarray | None = None,
    eps: float = 0.0,
) -> Evaluation:
    """Accuracy on ``x``; with ``x_clean``, also the attack's success rate and L-inf size.

    Args:
        model: a fitted classifier
        x: inputs to score (adversarial or clean)
        y: true labels
        x_clean: the clean inputs ``x`` was made from, if any
        eps: the attack strength, recorded with the result
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels")
    predicted = model.predict(x)
    correct_share = float(np.mean(predicted == y))
    success_rate, linf = 0.0, 0.0
    if x_clean is not None:
        clean_predicted = model.predict(x_clean)
        correct = clean_predicted == y
        if correct.any():
            success_rate = float(np.mean(predicted[correct] != y[correct]))
        linf = float(np.max(np.abs(x - x_clean))) if len(x) else 0.0
    return {
        "eps": float(eps),
        "accuracy": correct_share,
        "attack_success_rate": success_rate,
        "perturbation_linf": linf,
    }
