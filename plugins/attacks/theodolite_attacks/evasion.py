"""Evasion attacks through ART, unchanged: the plumbing must not change the science.

Every task builds the ART attack with the given parameters and calls ``generate`` inside a
seeded section (see ``theodolite.sdk.seeding``): a plain script that seeds numpy, random and
torch with the same seed and makes the same call gets the same array."""

from __future__ import annotations

from typing import Literal

import numpy as np
from art.attacks.evasion import (
    CarliniL2Method,
    DeepFool,
    FastGradientMethod,
    ProjectedGradientDescent,
)
from art.estimators.classification import SklearnClassifier
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.base import BaseEstimator

from theodolite.sdk import isolated, resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_attacks._checks import (
    check_classifier,
    check_eps,
    check_inputs,
    check_labels,
    check_positive_int,
    norm_value,
)

Norm = Literal["inf", "1", "2"]


def _labels(task_name: str, classifier: ClassifierMixin, x: np.ndarray, y: np.ndarray | None):
    return None if y is None else check_labels(task_name, x, y, classifier.nb_classes)


def _gradient_attack_inputs(
    task_name: str, classifier: ClassifierMixin, x: np.ndarray, eps: float, norm: Norm
) -> tuple[np.ndarray, float, float]:
    """The checked rows, eps and norm of an attack that follows the loss gradient."""
    check_classifier(task_name, classifier, gradients=True)
    x = check_inputs(task_name, classifier, x)
    p = norm_value(task_name, norm)
    return x, check_eps(task_name, classifier, x, eps, p), p


def run_fgm(
    classifier: ClassifierMixin,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    eps: float,
    norm: float,
    batch_size: int,
    seed: int,
) -> np.ndarray:
    if eps == 0.0:
        return np.array(x, copy=True)
    attack = FastGradientMethod(estimator=classifier, norm=norm, eps=eps, batch_size=batch_size)
    with seeded(seed):
        return attack.generate(x=x, y=y)


def run_pgd(
    classifier: ClassifierMixin,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    eps: float,
    eps_step: float,
    max_iter: int,
    norm: float,
    num_random_init: int,
    batch_size: int,
    seed: int,
) -> np.ndarray:
    if eps == 0.0:
        return np.array(x, copy=True)
    attack = ProjectedGradientDescent(
        estimator=classifier,
        norm=norm,
        eps=eps,
        eps_step=eps_step,
        max_iter=max_iter,
        num_random_init=num_random_init,
        batch_size=batch_size,
        verbose=False,
    )
    with seeded(seed):
        return attack.generate(x=x, y=y)


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
    with isolated():
        return FastGradientMethod(estimator=classifier, eps=eps).generate(x=x)


@task
def fgm(
    classifier: ClassifierMixin,
    x: np.ndarray,
    eps: float,
    norm: Norm = "inf",
    y: np.ndarray | None = None,
    batch_size: int = 128,
    seed: int | None = None,
) -> np.ndarray:
    """Fast Gradient Method (ART's FastGradientMethod): one step of size ``eps`` along the
    loss gradient; with norm "inf" it is FGSM.

    Args:
        classifier: an ART classifier with loss gradients
        x: inputs to perturb
        eps: size of the perturbation in ``norm`` (L-inf: in [0, clip range])
        norm: "inf", "1" or "2"
        y: true labels (default: the classifier's predictions, which avoids label leaking)
        batch_size: inputs per gradient computation
        seed: seed of the global generators ART draws from (default: the step's seed)
    """
    name = "attacks.fgm"
    x, eps, p = _gradient_attack_inputs(name, classifier, x, eps, norm)
    check_positive_int(name, "batch_size", batch_size)
    labels = _labels(name, classifier, x, y)
    return run_fgm(
        classifier, x, labels, eps=eps, norm=p, batch_size=batch_size, seed=resolve_seed(name, seed)
    )


@task
def pgd(
    classifier: ClassifierMixin,
    x: np.ndarray,
    eps: float,
    eps_step: float | None = None,
    max_iter: int = 20,
    norm: Norm = "inf",
    num_random_init: int = 0,
    y: np.ndarray | None = None,
    batch_size: int = 128,
    seed: int | None = None,
) -> np.ndarray:
    """Projected Gradient Descent (ART's ProjectedGradientDescent, Madry et al.).

    Args:
        classifier: an ART classifier with loss gradients
        x: inputs to perturb
        eps: radius of the allowed perturbation in ``norm`` (L-inf: in [0, clip range])
        eps_step: size of each step (default: eps / 4)
        max_iter: number of steps
        norm: "inf", "1" or "2"
        num_random_init: random starts inside the eps-ball (0: start at x)
        y: true labels (default: the classifier's predictions)
        batch_size: inputs per gradient computation
        seed: seed of the random starts (default: the step's seed)
    """
    name = "attacks.pgd"
    x, eps, p = _gradient_attack_inputs(name, classifier, x, eps, norm)
    step = eps / 4 if eps_step is None else float(eps_step)
    if eps > 0 and not 0.0 < step <= eps:
        raise bad_input(name, "eps_step", f"must lie in (0, eps={eps:g}], got {eps_step}")
    check_positive_int(name, "max_iter", max_iter)
    check_positive_int(name, "num_random_init", num_random_init, minimum=0)
    check_positive_int(name, "batch_size", batch_size)
    return run_pgd(
        classifier,
        x,
        _labels(name, classifier, x, y),
        eps=eps,
        eps_step=step,
        max_iter=max_iter,
        norm=p,
        num_random_init=num_random_init,
        batch_size=batch_size,
        seed=resolve_seed(name, seed),
    )


@task
def carlini_wagner_l2(
    classifier: ClassifierMixin,
    x: np.ndarray,
    confidence: float = 0.0,
    learning_rate: float = 0.01,
    binary_search_steps: int = 5,
    max_iter: int = 10,
    initial_const: float = 0.01,
    y: np.ndarray | None = None,
    batch_size: int = 32,
    seed: int | None = None,
) -> np.ndarray:
    """Carlini and Wagner's L2 attack (ART's CarliniL2Method): the smallest L2 change that
    flips the prediction with margin ``confidence``.

    Args:
        classifier: an ART classifier with class gradients
        x: inputs to perturb
        confidence: margin of the adversarial class over the others
        learning_rate: step size of the optimiser
        binary_search_steps: rounds of the search for the trade-off constant
        max_iter: optimiser steps per round
        initial_const: starting trade-off constant
        y: true labels (default: the classifier's predictions)
        batch_size: inputs optimised together
        seed: seed of the global generators (default: the step's seed)
    """
    name = "attacks.carlini_wagner_l2"
    check_classifier(name, classifier, class_gradients=True)
    x = check_inputs(name, classifier, x)
    if confidence < 0 or learning_rate <= 0 or initial_const <= 0:
        raise bad_input(name, "confidence", "must be >= 0, and learning_rate and initial_const > 0")
    for field, value in (("binary_search_steps", binary_search_steps), ("max_iter", max_iter)):
        check_positive_int(name, field, value)
    check_positive_int(name, "batch_size", batch_size)
    attack = CarliniL2Method(
        classifier=classifier,
        confidence=confidence,
        learning_rate=learning_rate,
        binary_search_steps=binary_search_steps,
        max_iter=max_iter,
        initial_const=initial_const,
        batch_size=batch_size,
        verbose=False,
    )
    with seeded(resolve_seed(name, seed)):
        return attack.generate(x=x, y=_labels(name, classifier, x, y))


@task
def deepfool(
    classifier: ClassifierMixin,
    x: np.ndarray,
    max_iter: int = 50,
    epsilon: float = 1e-6,
    nb_grads: int = 10,
    batch_size: int = 32,
    seed: int | None = None,
) -> np.ndarray:
    """DeepFool (ART's DeepFool): steps to the nearest linearised decision boundary.

    Args:
        classifier: an ART classifier with class gradients
        x: inputs to perturb
        max_iter: most steps
        epsilon: overshoot past the boundary
        nb_grads: classes considered (the most likely ones)
        batch_size: inputs per batch
        seed: seed of the global generators (default: the step's seed)
    """
    name = "attacks.deepfool"
    check_classifier(name, classifier, class_gradients=True)
    x = check_inputs(name, classifier, x)
    check_positive_int(name, "max_iter", max_iter)
    check_positive_int(name, "nb_grads", nb_grads)
    check_positive_int(name, "batch_size", batch_size)
    if not 0.0 <= epsilon < 1.0:
        raise bad_input(name, "epsilon", f"must lie in [0, 1), got {epsilon}")
    attack = DeepFool(
        classifier=classifier,
        max_iter=max_iter,
        epsilon=epsilon,
        nb_grads=min(nb_grads, classifier.nb_classes),
        batch_size=batch_size,
        verbose=False,
    )
    with seeded(resolve_seed(name, seed)):
        return attack.generate(x=x)
