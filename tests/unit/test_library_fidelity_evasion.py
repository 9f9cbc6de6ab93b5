"""The evasion attack tasks give exactly what the same ART call gives in a plain script: same
model, data, parameters and seed. The plumbing must not change the science."""

from __future__ import annotations

import numpy as np
from art.attacks.evasion import (
    CarliniL2Method,
    DeepFool,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)
from art.estimators.classification import SklearnClassifier
from sklearn.linear_model import LogisticRegression
from theodolite_attacks import tasks as attacks
from theodolite_attacks.blackbox import hop_skip_jump_starts

from tests.fixtures import library
from tests.fixtures.library import Digits, plain_art, plain_attack, seed_everything
from theodolite.sdk.context import TaskContext

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn, cnn_classifier, lr_classifier = library.cnn, library.cnn_classifier, library.lr_classifier
images, flat, task_context = library.images, library.flat, library.task_context


def accuracy(classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(classifier.predict(x), axis=1) == y))


def test_library_fgm_matches_art(cnn, cnn_classifier, images: Digits) -> None:
    x = images.x_test[:100]
    for norm, eps, value in (("inf", 0.1, np.inf), ("2", 0.8, 2)):
        ours = attacks.fgm(cnn_classifier, x, eps=eps, norm=norm, seed=5)
        direct = plain_attack(
            FastGradientMethod, cnn, x, seed=5, norm=value, eps=eps, batch_size=128
        )
        assert np.array_equal(ours, direct)


def test_library_pgd_matches_art_with_random_starts(cnn, cnn_classifier, images: Digits) -> None:
    x, y = images.x_test[:100], images.y_test[:100]
    options = {"eps": 0.1, "eps_step": 0.02, "max_iter": 10, "num_random_init": 2}
    ours = attacks.pgd(cnn_classifier, x, y=y, seed=11, **options)
    art_defaults = {"norm": np.inf, "batch_size": 128}
    direct = plain_attack(
        ProjectedGradientDescent, cnn, x, y=y, seed=11, verbose=False, **art_defaults, **options
    )
    assert np.array_equal(ours, direct)
    assert accuracy(cnn_classifier, ours, y) == accuracy(plain_art(cnn), direct, y)
    assert np.abs(ours - x).max() <= 0.1 + 1e-6


def test_library_pgd_without_a_seed_uses_the_steps_seed(
    cnn_classifier, images: Digits, task_context: TaskContext
) -> None:
    x = images.x_test[:50]
    first = attacks.pgd(cnn_classifier, x, eps=0.1, max_iter=5, num_random_init=1)
    again = attacks.pgd(cnn_classifier, x, eps=0.1, max_iter=5, num_random_init=1)
    explicit = attacks.pgd(
        cnn_classifier, x, eps=0.1, max_iter=5, num_random_init=1, seed=task_context.step_seed
    )
    assert np.array_equal(first, again) and np.array_equal(first, explicit)


def test_library_carlini_wagner_l2_matches_art(cnn, cnn_classifier, images: Digits) -> None:
    x = images.x_test[:40]
    options = {"binary_search_steps": 2, "max_iter": 5, "batch_size": 40}
    ours = attacks.carlini_wagner_l2(cnn_classifier, x, seed=2, **options)
    art_defaults = {"confidence": 0.0, "learning_rate": 0.01, "initial_const": 0.01}
    direct = plain_attack(CarliniL2Method, cnn, x, seed=2, verbose=False, **art_defaults, **options)
    assert np.array_equal(ours, direct)


def test_library_deepfool_matches_art(cnn, cnn_classifier, images: Digits) -> None:
    x = images.x_test[:40]
    options = {"max_iter": 10, "batch_size": 40}
    ours = attacks.deepfool(cnn_classifier, x, seed=2, **options)
    direct = plain_attack(
        DeepFool, cnn, x, seed=2, epsilon=1e-6, nb_grads=10, verbose=False, **options
    )
    assert np.array_equal(ours, direct)


def test_library_hop_skip_jump_matches_art_from_the_same_starts(
    cnn, cnn_classifier, images: Digits
) -> None:
    """ART draws HopSkipJump's starting points from an unseeded RandomState; the task draws
    them the same way from a seeded one and hands them to ART, so its runs repeat."""
    x = images.x_test[:10]
    options = {"max_iter": 2, "max_eval": 100, "init_eval": 10, "init_size": 20}
    ours = attacks.hop_skip_jump(cnn_classifier, x, seed=4, **options)
    assert np.array_equal(ours, attacks.hop_skip_jump(cnn_classifier, x, seed=4, **options))
    direct = HopSkipJump(
        plain_art(cnn), batch_size=64, targeted=False, norm=2, verbose=False, **options
    )
    starts = hop_skip_jump_starts(direct, x, init_size=20, seed=4)
    seed_everything(4)
    assert np.array_equal(ours, direct.generate(x, x_adv_init=starts))
    labels = np.argmax(cnn_classifier.predict(x), axis=1)
    assert np.mean(np.argmax(cnn_classifier.predict(ours), axis=1) != labels) >= 0.9


def test_library_square_matches_art(cnn, cnn_classifier, images: Digits) -> None:
    x = images.x_test[:40]
    options = {"eps": 0.2, "max_iter": 20}
    ours = attacks.square(cnn_classifier, x, seed=9, **options)
    art_defaults = {"norm": np.inf, "p_init": 0.8, "nb_restarts": 1, "batch_size": 128}
    direct = plain_attack(SquareAttack, cnn, x, seed=9, verbose=False, **art_defaults, **options)
    assert np.array_equal(ours, direct)


def test_library_robustness_sweep_is_pgd_and_fgsm_at_each_eps(
    cnn, cnn_classifier, lr_classifier, images: Digits, flat: Digits
) -> None:
    x, y = images.x_test[:100], images.y_test[:100]
    sweep = attacks.robustness_sweep(cnn_classifier, x, y, eps=[0.0, 0.1], max_iter=5, seed=1)
    for eps in (0.0, 0.1):
        if eps:
            steps = {"eps": eps, "eps_step": eps / 4, "max_iter": 5}
            direct = plain_attack(
                ProjectedGradientDescent, cnn, x, y=y, seed=1, verbose=False, **steps
            )
        else:
            direct = x
        assert sweep["accuracy"][f"{eps:g}"] == accuracy(plain_art(cnn), direct, y)
    fx, fy = flat.x_test[:100], flat.y_test[:100]
    sweep = attacks.robustness_sweep(lr_classifier, fx, fy, eps=[0.05, 0.2], attack="fgsm", seed=1)
    model = lr_classifier.model
    for eps in (0.05, 0.2):
        plain = SklearnClassifier(model=model, clip_values=(0.0, 1.0))
        direct = FastGradientMethod(plain, eps=eps, batch_size=128).generate(fx, y=fy)
        assert sweep["accuracy"][f"{eps:g}"] == accuracy(plain, direct, fy)
    assert sweep["accuracy"]["0.2"] < sweep["accuracy"]["0.05"]


def test_library_legacy_fgsm_task_is_unchanged(flat: Digits) -> None:
    model = LogisticRegression(max_iter=200, random_state=0).fit(flat.x_train, flat.y_train)
    x = flat.x_test[:50]
    ours = attacks.fgsm(model, x, eps=0.1)
    direct = FastGradientMethod(
        SklearnClassifier(model=model, clip_values=(0.0, 1.0)), eps=0.1
    ).generate(x=x)
    assert np.array_equal(ours, direct)
    assert np.array_equal(attacks.fgsm(model, x, eps=0.0), x)
