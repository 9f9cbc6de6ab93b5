"""The defence tasks give exactly what the same ART calls give in a plain script."""

from __future__ import annotations

import copy

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.preprocessor import (
    FeatureSqueezing,
    GaussianAugmentation,
    JpegCompression,
    SpatialSmoothing,
)
from art.defences.trainer import AdversarialTrainer
from theodolite_attacks import tasks as attacks
from theodolite_defences import tasks as defences
from theodolite_models.tasks import art_classifier

from tests.fixtures import library
from tests.fixtures.library import Digits, plain_art, seed_everything

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn, cnn_classifier, images = library.cnn, library.cnn_classifier, library.images


def labels(classifier, x: np.ndarray) -> np.ndarray:
    return np.argmax(classifier.predict(x), axis=1)


def test_library_preprocessors_match_art(cnn, cnn_classifier, images: Digits) -> None:
    x, y = images.x_test[:100], images.y_test[:100]
    cases = [
        (defences.feature_squeezing(cnn_classifier, bit_depth=2), FeatureSqueezing((0.0, 1.0), 2)),
        (
            defences.spatial_smoothing(cnn_classifier, window_size=3),
            SpatialSmoothing(window_size=3, channels_first=True, clip_values=(0.0, 1.0)),
        ),
        (
            defences.jpeg_compression(cnn_classifier, quality=25),
            JpegCompression(
                clip_values=(0.0, 1.0), quality=25, channels_first=True, apply_fit=False
            ),
        ),
    ]
    for defended, preprocessor in cases:
        # The same transformation (ART's float64 output cast back to the input's float32) ...
        ours = defended.preprocessing_defences[-1](x)[0]
        assert ours.dtype == np.float32
        assert np.array_equal(ours, preprocessor(x)[0].astype(np.float32))
        # ... so the same predictions as a plain ART classifier with that defence.
        direct = plain_art(cnn, preprocessing_defences=[preprocessor])
        assert np.array_equal(defended.predict(x), direct.predict(x))
        # An adaptive attack differentiates through the defence as ART does (BPDA).
        ours_adv = attacks.pgd(defended, x, eps=0.1, max_iter=5, seed=1)
        seed_everything(1)
        direct_adv = ProjectedGradientDescent(
            direct, eps=0.1, eps_step=0.025, max_iter=5, verbose=False
        ).generate(x)
        assert np.array_equal(labels(defended, ours_adv), labels(direct, direct_adv))
    # The undefended classifier is untouched.
    assert cnn_classifier.preprocessing_defences is None
    assert np.array_equal(cnn_classifier.predict(x), plain_art(cnn).predict(x))
    assert float(np.mean(labels(cases[0][0], x) == y)) > 0.5


def test_library_gaussian_augmentation_matches_art(images: Digits) -> None:
    x, y = images.x_train[:200], images.y_train[:200]
    ours = defences.gaussian_augmentation(x, y, sigma=0.2, ratio=0.5, seed=6)
    seed_everything(6)
    direct_x, direct_y = GaussianAugmentation(
        sigma=0.2, augmentation=True, ratio=0.5, clip_values=(0.0, 1.0)
    )(x, y)
    assert np.array_equal(ours["x"], direct_x) and np.array_equal(ours["y"], direct_y)
    assert len(ours["x"]) == 300 and ours["x"].min() >= 0.0 and ours["x"].max() <= 1.0


def test_library_adversarial_training_matches_art(cnn, images: Digits) -> None:
    x, y = images.x_train[:256], images.y_train[:256]
    start = copy.deepcopy(cnn)
    classifier = art_classifier(copy.deepcopy(start), learning_rate=1e-3)
    pgd = {"eps": 0.1, "eps_step": 0.05, "max_iter": 3}
    ours = defences.adversarial_training(
        classifier, x, y, ratio=0.5, epochs=2, batch_size=64, seed=8, **pgd
    )
    module = copy.deepcopy(start)
    direct = plain_art(module, optimizer=torch.optim.Adam(module.parameters(), lr=1e-3))
    attack = ProjectedGradientDescent(
        direct, num_random_init=1, batch_size=64, verbose=False, **pgd
    )
    seed_everything(8)
    AdversarialTrainer(direct, attacks=attack, ratio=0.5).fit(x, y, nb_epochs=2, batch_size=64)
    for mine, theirs in zip(ours.model.parameters(), direct.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    test = images.x_test[:100]
    assert np.array_equal(ours.predict(test), direct.predict(test))
    # It trained a copy: the classifier it was given still has the starting weights.
    for before, after in zip(start.parameters(), classifier.model.parameters(), strict=True):
        assert torch.equal(before, after)
