"""Training-time defences: Gaussian data augmentation and PGD adversarial training."""

from __future__ import annotations

import copy
from typing import Any, TypedDict

import numpy as np
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.preprocessor import GaussianAugmentation
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import PyTorchClassifier
from art.estimators.classification.classifier import ClassifierMixin

from theodolite.sdk import current, resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_defences._checks import check_classifier, check_data, clip_values


class Augmented(TypedDict):
    x: np.ndarray
    y: np.ndarray


@task
def gaussian_augmentation(
    x: np.ndarray,
    y: np.ndarray,
    sigma: float = 0.1,
    ratio: float = 1.0,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    seed: int | None = None,
) -> Augmented:
    """Gaussian data augmentation (ART's GaussianAugmentation): the training set plus noisy
    copies of ``ratio`` of its rows, to train a model on (models.train_cnn, ...).

    Args:
        x: training inputs
        y: their labels
        sigma: standard deviation of the noise
        ratio: noisy copies per row (1: one each, 0.5: one for every other row)
        clip_min: smallest valid input value
        clip_max: largest valid input value
        seed: seed of the noise (default: the step's seed)
    """
    name = "defences.gaussian_augmentation"
    x, labels = check_data(name, x, y)
    if not np.isfinite(sigma) or sigma <= 0:
        raise bad_input(name, "sigma", f"must be > 0, got {sigma}")
    if not np.isfinite(ratio) or ratio <= 0:
        raise bad_input(name, "ratio", f"must be > 0, got {ratio}")
    if not clip_min < clip_max:
        raise bad_input(name, "clip_min", f"must be below clip_max, got {clip_min}, {clip_max}")
    augment = GaussianAugmentation(
        sigma=sigma, augmentation=True, ratio=ratio, clip_values=(clip_min, clip_max)
    )
    with seeded(resolve_seed(name, seed)):
        x_aug, y_aug = augment(x, labels)
    return {"x": x_aug.astype(x.dtype, copy=False), "y": np.asarray(y_aug).astype(labels.dtype)}


@task
def adversarial_training(
    classifier: ClassifierMixin,
    x: np.ndarray,
    y: np.ndarray,
    eps: float = 0.1,
    eps_step: float | None = None,
    max_iter: int = 7,
    num_random_init: int = 1,
    ratio: float = 1.0,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int | None = None,
) -> ClassifierMixin:
    """PGD adversarial training (ART's AdversarialTrainer with ProjectedGradientDescent, Madry
    et al. at ratio 1): each batch has ``ratio`` of its rows replaced by PGD examples against
    the model being trained. Trains a copy; the input classifier is not changed.

    Args:
        classifier: a PyTorch ART classifier with an optimizer (pre-trained or fresh)
        x: training inputs
        y: their labels
        eps: L-inf radius of the training attack, in (0, clip range]
        eps_step: PGD's step (default: eps / 4)
        max_iter: PGD's steps
        num_random_init: PGD's random starts (1: start at a random point of the eps-ball)
        ratio: share of each batch made adversarial, in (0, 1]
        epochs: passes over the training data
        batch_size: rows per batch
        seed: seed of the batch order, the adversarial rows and PGD's starts (default: the
            step's seed)
    """
    name = "defences.adversarial_training"
    check_classifier(name, classifier)
    if not isinstance(classifier, PyTorchClassifier) or classifier.optimizer is None:
        raise bad_input(
            name,
            "classifier",
            "must be a PyTorch ART classifier with an optimizer (a torch "
            "model through models.art_classifier)",
        )
    x, labels = check_data(name, x, y, classifier.input_shape)
    low, high = clip_values(name, classifier)
    if not 0.0 < eps <= high - low:
        raise bad_input(name, "eps", f"must lie in (0, {high - low:g}], got {eps}")
    step = eps / 4 if eps_step is None else float(eps_step)
    if not 0.0 < step <= eps:
        raise bad_input(name, "eps_step", f"must lie in (0, eps={eps:g}], got {eps_step}")
    if not 0.0 < ratio <= 1.0:
        raise bad_input(name, "ratio", f"must lie in (0, 1], got {ratio}")
    for field, value, minimum in (
        ("max_iter", max_iter, 1),
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("num_random_init", num_random_init, 0),
    ):
        if value < minimum:
            raise bad_input(name, field, f"must be >= {minimum}, got {value}")
    trained = copy.deepcopy(classifier)
    attack = ProjectedGradientDescent(
        trained,
        norm=np.inf,
        eps=eps,
        eps_step=step,
        max_iter=max_iter,
        num_random_init=num_random_init,
        batch_size=batch_size,
        verbose=False,
    )
    trainer = AdversarialTrainer(trained, attacks=attack, ratio=ratio)
    batches = -(-len(x) // batch_size)
    fit_batch = trained.fit
    fitted = 0

    def fit_and_report(*args: Any, **kwargs: Any) -> None:
        """The trainer fits one batch per call: report progress after each epoch's last."""
        nonlocal fitted
        fit_batch(*args, **kwargs)
        fitted += 1
        if fitted % batches == 0:
            epoch = fitted // batches
            current().progress(epoch / epochs, f"adversarial epoch {epoch}/{epochs}")

    trained.fit = fit_and_report  # type: ignore[method-assign]
    try:
        with seeded(resolve_seed(name, seed)):
            trainer.fit(x, labels, nb_epochs=epochs, batch_size=batch_size)
    finally:
        del trained.fit  # the class's own fit again
    return trained
