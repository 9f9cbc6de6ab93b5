"""Robustness sweeps: robust accuracy at several attack strengths, the points of a curve."""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import current, resolve_seed, task
from theodolite.sdk.checks import bad_input
from theodolite_attacks._checks import (
    check_classifier,
    check_eps,
    check_inputs,
    check_labels,
    check_positive_int,
    predicted_labels,
)
from theodolite_attacks.evasion import run_fgm, run_pgd


class Sweep(TypedDict):
    accuracy: dict[str, float]
    attack_success_rate: dict[str, float]
    perturbation_linf: dict[str, float]


def eps_key(eps: float) -> str:
    """How a sweep names an eps: ``0.05`` (metrics ``<output>.0.05``)."""
    return f"{eps:g}"


@task
def robustness_sweep(
    classifier: ClassifierMixin,
    x: np.ndarray,
    y: np.ndarray,
    eps: list[float],
    attack: Literal["fgsm", "pgd"] = "pgd",
    eps_step_ratio: float = 0.25,
    max_iter: int = 20,
    batch_size: int = 128,
    seed: int | None = None,
) -> Sweep:
    """Robust accuracy against L-inf FGSM or PGD at each eps: the points of a robustness curve,
    keyed by eps ("0.05"). Each point is exactly what attacks.fgm / attacks.pgd give with the
    true labels ``y`` and the same seed.

    Args:
        classifier: an ART classifier with loss gradients
        x: clean inputs
        y: their true labels (the attack moves away from them)
        eps: the strengths, each in [0, clip range]
        attack: "fgsm" or "pgd"
        eps_step_ratio: PGD's step as a share of eps
        max_iter: PGD's steps
        batch_size: inputs per gradient computation
        seed: seed (default: the step's seed)
    """
    name = "attacks.robustness_sweep"
    check_classifier(name, classifier, gradients=True)
    x = check_inputs(name, classifier, x)
    y = check_labels(name, x, y, classifier.nb_classes)
    if attack not in ("fgsm", "pgd"):
        raise bad_input(name, "attack", f"must be 'fgsm' or 'pgd', got {attack!r}")
    if not eps:
        raise bad_input(name, "eps", "must name at least one strength")
    strengths = [check_eps(name, classifier, x, e, np.inf) for e in eps]
    if not 0.0 < eps_step_ratio <= 1.0:
        raise bad_input(name, "eps_step_ratio", f"must lie in (0, 1], got {eps_step_ratio}")
    check_positive_int(name, "max_iter", max_iter)
    seed = resolve_seed(name, seed)
    correct = predicted_labels(classifier, x) == y
    result: Sweep = {"accuracy": {}, "attack_success_rate": {}, "perturbation_linf": {}}
    for done, e in enumerate(strengths, start=1):
        if attack == "fgsm":
            x_adv = run_fgm(classifier, x, y, eps=e, norm=np.inf, batch_size=batch_size, seed=seed)
        else:
            x_adv = run_pgd(
                classifier,
                x,
                y,
                eps=e,
                eps_step=e * eps_step_ratio,
                max_iter=max_iter,
                norm=np.inf,
                num_random_init=0,
                batch_size=batch_size,
                seed=seed,
            )
        fooled = predicted_labels(classifier, x_adv) != y
        key = eps_key(e)
        result["accuracy"][key] = float(np.mean(~fooled))
        result["attack_success_rate"][key] = (
            float(np.mean(fooled[correct])) if correct.any() else 0.0
        )
        result["perturbation_linf"][key] = float(np.max(np.abs(x_adv - x)))
        current().progress(
            done / len(strengths), f"{attack} eps={key}: accuracy {np.mean(~fooled):.3f}"
        )
    return result
