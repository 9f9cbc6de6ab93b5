"""Black-box membership inference through ART's MembershipInferenceBlackBox."""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np
from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_attacks._checks import check_classifier, check_inputs, check_labels


class MembershipScores(TypedDict):
    scores: np.ndarray  # the attack's membership probability for each held-out row
    is_member: np.ndarray  # 1 where that row was in the target's training set


def membership_split(
    n_members: int, n_nonmembers: int, attack_train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal numbers of members and non-members, each cut into the attack's training rows and
    the held-out rows it is scored on: (members_fit, members_eval, nonmembers_fit,
    nonmembers_eval) indices."""
    rng = np.random.default_rng(seed)
    size = min(n_members, n_nonmembers)
    members = rng.permutation(n_members)[:size]
    nonmembers = rng.permutation(n_nonmembers)[:size]
    cut = int(round(attack_train_fraction * size))
    return members[:cut], members[cut:], nonmembers[:cut], nonmembers[cut:]


@task
def membership_inference(
    classifier: ClassifierMixin,
    x_members: np.ndarray,
    y_members: np.ndarray,
    x_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    attack_model_type: Literal["rf", "gb", "nn", "lr", "dt", "knn", "svm"] = "rf",
    attack_train_fraction: float = 0.5,
    seed: int | None = None,
) -> MembershipScores:
    """Black-box membership inference (ART's MembershipInferenceBlackBox on the prediction
    vectors): an attack model learns to tell the target's training rows (members) from unseen
    rows, on half of each; it is scored on the other halves.

    Args:
        classifier: the target, as an ART classifier (only its predictions are used)
        x_members: rows the target was trained on
        y_members: their labels
        x_nonmembers: rows it never saw
        y_nonmembers: their labels
        attack_model_type: ART's attack model: rf, gb, nn, lr, dt, knn or svm
        attack_train_fraction: share of each group that trains the attack, in (0, 1)
        seed: seed of the split and of the attack model (default: the step's seed)
    """
    name = "attacks.membership_inference"
    check_classifier(name, classifier)
    x_members = check_inputs(name, classifier, x_members, "x_members")
    x_nonmembers = check_inputs(name, classifier, x_nonmembers, "x_nonmembers")
    y_members = check_labels(name, x_members, y_members, classifier.nb_classes, "y_members")
    y_nonmembers = check_labels(
        name, x_nonmembers, y_nonmembers, classifier.nb_classes, "y_nonmembers"
    )
    if not 0.0 < attack_train_fraction < 1.0:
        raise bad_input(
            name, "attack_train_fraction", f"must lie in (0, 1), got {attack_train_fraction}"
        )
    seed = resolve_seed(name, seed)
    m_fit, m_eval, n_fit, n_eval = membership_split(
        len(x_members), len(x_nonmembers), attack_train_fraction, seed
    )
    if min(len(m_fit), len(m_eval)) < 2:
        raise bad_input(name, "x_nonmembers", "are too few: each half needs 2 rows or more")
    attack = MembershipInferenceBlackBox(classifier, attack_model_type=attack_model_type)
    with seeded(seed):
        attack.fit(
            x=x_members[m_fit],
            y=y_members[m_fit],
            test_x=x_nonmembers[n_fit],
            test_y=y_nonmembers[n_fit],
        )
        x_eval = np.concatenate([x_members[m_eval], x_nonmembers[n_eval]])
        y_eval = np.concatenate([y_members[m_eval], y_nonmembers[n_eval]])
        scores = attack.infer(x_eval, y_eval, probabilities=True)
    is_member = np.concatenate(
        [np.ones(len(m_eval), dtype=np.int64), np.zeros(len(n_eval), dtype=np.int64)]
    )
    return {"scores": np.asarray(scores, dtype=np.float64).reshape(-1), "is_member": is_member}
