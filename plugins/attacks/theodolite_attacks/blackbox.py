"""Black-box evasion attacks through ART: they use the classifier's predictions only, never its
gradients. Decision-based HopSkipJump (labels only) and score-based Square (probabilities)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from art.attacks.evasion import HopSkipJump, SquareAttack
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import isolated, resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_attacks._checks import (
    check_classifier,
    check_eps,
    check_inputs,
    check_positive_int,
    norm_value,
    predicted_labels,
)


@task
def hop_skip_jump(
    classifier: ClassifierMixin,
    x: np.ndarray,
    norm: Literal["2", "inf"] = "2",
    max_iter: int = 10,
    max_eval: int = 1000,
    init_eval: int = 100,
    init_size: int = 100,
    batch_size: int = 64,
    seed: int | None = None,
) -> np.ndarray:
    """HopSkipJump (ART's HopSkipJump): a black-box, decision-based attack that needs only the
    predicted labels; it walks along the decision boundary towards the input.

    Args:
        classifier: an ART classifier (only its predictions are used)
        x: inputs to perturb
        norm: "2" or "inf", the distance it minimises
        max_iter: boundary walks
        max_eval: most queries per gradient estimate
        init_eval: queries of the first gradient estimate
        init_size: random tries to find a first adversarial point
        batch_size: queries per batch
        seed: seed of its random draws, starting points included (default: the step's seed)
    """
    name = "attacks.hop_skip_jump"
    check_classifier(name, classifier)
    if classifier.clip_values is None:
        raise bad_input(name, "classifier", "has no clip values: wrap it with clip_min/clip_max")
    x = check_inputs(name, classifier, x)
    if norm not in ("2", "inf"):
        raise bad_input(name, "norm", f"must be '2' or 'inf', got {norm!r}")
    for field, value in (
        ("max_iter", max_iter),
        ("max_eval", max_eval),
        ("init_eval", init_eval),
        ("init_size", init_size),
        ("batch_size", batch_size),
    ):
        check_positive_int(name, field, value)
    if init_eval > max_eval:
        raise bad_input(name, "init_eval", f"({init_eval}) must not exceed max_eval ({max_eval})")
    attack = HopSkipJump(
        classifier=classifier,
        batch_size=batch_size,
        targeted=False,
        norm=norm_value(name, norm),
        max_iter=max_iter,
        max_eval=max_eval,
        init_eval=init_eval,
        init_size=init_size,
        verbose=False,
    )
    seed = resolve_seed(name, seed)
    starts = hop_skip_jump_starts(attack, x, init_size, seed)
    with seeded(seed):
        return attack.generate(x=x, x_adv_init=starts)


def hop_skip_jump_starts(
    attack: HopSkipJump, x: np.ndarray, init_size: int, seed: int
) -> np.ndarray:
    """HopSkipJump's starting points, drawn as ART draws them (uniform noise until the label
    changes, then ART's binary search towards the input), but from a seeded generator: ART draws
    them from an unseeded ``np.random.RandomState()``, so its runs would not repeat. Rows with no
    adversarial start within ``init_size`` draws start at the input itself."""
    rng = np.random.RandomState(seed)
    labels = predicted_labels(attack.estimator, x)
    low, high = attack.estimator.clip_values
    starts = np.array(x, copy=True)
    with isolated():  # the binary search predicts too
        for i, row in enumerate(x):
            for _ in range(init_size):
                noise = rng.uniform(low, high, size=row.shape).astype(row.dtype)
                if predicted_labels(attack.estimator, noise[None])[0] != labels[i]:
                    starts[i] = attack._binary_search(
                        current_sample=noise,
                        original_sample=row,
                        target=labels[i],
                        norm=2,
                        clip_min=low,
                        clip_max=high,
                        threshold=0.001,
                    )
                    break
    return starts


@task
def square(
    classifier: ClassifierMixin,
    x: np.ndarray,
    eps: float,
    norm: Literal["inf", "2"] = "inf",
    max_iter: int = 100,
    p_init: float = 0.8,
    nb_restarts: int = 1,
    batch_size: int = 128,
    seed: int | None = None,
) -> np.ndarray:
    """Square Attack (ART's SquareAttack): a black-box, score-based random search inside the
    eps-ball; it queries the classifier's scores, never its gradients.

    Args:
        classifier: an ART classifier (only its predictions are used)
        x: inputs to perturb
        eps: radius of the allowed perturbation in ``norm``
        norm: "inf" or "2"
        max_iter: queries per input
        p_init: initial share of the image a square covers
        nb_restarts: restarts
        batch_size: inputs per batch
        seed: seed of its random draws (default: the step's seed)
    """
    name = "attacks.square"
    check_classifier(name, classifier)
    x = check_inputs(name, classifier, x)
    if norm not in ("inf", "2"):
        raise bad_input(name, "norm", f"must be 'inf' or '2', got {norm!r}")
    p = norm_value(name, norm)
    eps = check_eps(name, classifier, x, eps, p)
    if eps == 0.0:
        return np.array(x, copy=True)
    if not 0.0 < p_init <= 1.0:
        raise bad_input(name, "p_init", f"must lie in (0, 1], got {p_init}")
    for field, value in (
        ("max_iter", max_iter),
        ("nb_restarts", nb_restarts),
        ("batch_size", batch_size),
    ):
        check_positive_int(name, field, value)
    attack = SquareAttack(
        estimator=classifier,
        norm=p,
        eps=eps,
        max_iter=max_iter,
        p_init=p_init,
        nb_restarts=nb_restarts,
        batch_size=batch_size,
        verbose=False,
    )
    with seeded(resolve_seed(name, seed)):
        return attack.generate(x=x)
