"""Evasion attacks through ART, unchanged: the plumbing must not change the science."""

from __future__ import annotations

import numpy as np
from art.attacks.evasion import FastGradientMethod
from art.estimators.classification import SklearnClassifier
from sklearn.base import BaseEstimator

from theodolite.sdk import task


@task
def fgsm(
    model: BaseEstimator, x: np.ndarray, eps: float, clip_min: float = 0.0, clip_max: float = 1.0
) -> np.ndarray:
    """Fast Gradient Sign Method (ART's FastGradientMethod, L-infinity) at ``eps``.

    Args:
        model: a fitted scikit-learn classifier with gradients (e.g. logistic regression)
        x: inputs to perturb
        eps: largest change of any feature, in [0, clip_max - clip_min]
        clip_min: smallest valid feature value
        clip_max: largest valid feature value
    """
    if not 0.0 <= eps <= clip_max - clip_min:
        raise ValueError(f"eps must lie in [0, {clip_max - clip_min}], got {eps}")
    if eps == 0.0:
        return np.array(x, copy=True)
    classifier = SklearnClassifier(model=model, clip_values=(clip_min, clip_max))
    return FastGradientMethod(estimator=classifier, eps=eps).generate(x=x)
