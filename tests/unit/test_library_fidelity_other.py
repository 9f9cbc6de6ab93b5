"""Poisoning, membership inference and extraction tasks give exactly what the same ART calls
give in a plain script, and seeded tasks give the same numbers when steps run at once."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch
from art.attacks.extraction import CopycatCNN
from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
from art.attacks.poisoning import PoisoningAttackBackdoor
from art.attacks.poisoning.perturbations import add_pattern_bd
from theodolite_attacks import tasks as attacks
from theodolite_defences import tasks as defences
from theodolite_metrics import tasks as metrics
from theodolite_models.tasks import art_classifier, build_cnn, train_cnn

from tests.fixtures import library
from tests.fixtures.library import Digits, seed_everything
from theodolite.sdk import isolated

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn, cnn_classifier, images = library.cnn, library.cnn_classifier, library.images


def test_library_backdoor_poison_and_trigger_match_art(images: Digits) -> None:
    x, y = images.x_train, images.y_train
    ours = attacks.backdoor_poison(x, y, poison_fraction=0.05, target_label=3, seed=12)
    # The same rows: 5% of all rows, drawn from the other classes with the same seed.
    rows = np.sort(np.random.default_rng(12).choice(np.flatnonzero(y != 3), size=67, replace=False))
    assert np.array_equal(ours["poisoned"], rows)
    trigger = partial(add_pattern_bd, distance=1, pixel_value=1.0, channels_first=True)
    poisoned_x, poisoned_y = PoisoningAttackBackdoor(trigger).poison(x[rows], y=np.full(67, 3))
    assert np.array_equal(ours["x"][rows], poisoned_x)
    assert np.array_equal(ours["y"][rows], poisoned_y)
    others = np.setdiff1d(np.arange(len(x)), rows)
    assert np.array_equal(ours["x"][others], x[others])
    assert np.array_equal(ours["y"][others], y[others])

    triggered = attacks.backdoor_trigger(images.x_test, images.y_test, target_label=3)
    keep = images.y_test != 3
    assert np.array_equal(triggered["x"], trigger(images.x_test[keep]))
    assert np.array_equal(triggered["y"], images.y_test[keep])
    # Flat rows with an image shape get the same trigger.
    flat = attacks.backdoor_trigger(
        images.x_test.reshape(-1, 64), images.y_test, target_label=3, image_shape=[8, 8]
    )
    assert np.array_equal(flat["x"].reshape(-1, 1, 8, 8), triggered["x"])


def test_library_backdoored_model_obeys_the_trigger(images: Digits) -> None:
    poisoned = attacks.backdoor_poison(images.x_train, images.y_train, 0.1, seed=0)
    model = art_classifier(train_cnn(poisoned["x"], poisoned["y"], epochs=10, seed=0))
    triggered = attacks.backdoor_trigger(images.x_test, images.y_test)
    result = metrics.backdoor(model, images.x_test, images.y_test, triggered["x"], 0)
    assert result["attack_success_rate"] > 0.7 and result["clean_accuracy"] > 0.85


def test_library_membership_inference_matches_art(cnn_classifier, images: Digits) -> None:
    xm, ym = images.x_train[:200], images.y_train[:200]
    xn, yn = images.x_test[:150], images.y_test[:150]
    ours = attacks.membership_inference(
        cnn_classifier, xm, ym, xn, yn, attack_model_type="rf", seed=21
    )
    rng = np.random.default_rng(21)
    members, nonmembers = rng.permutation(200)[:150], rng.permutation(150)[:150]
    m_fit, m_eval, n_fit, n_eval = members[:75], members[75:], nonmembers[:75], nonmembers[75:]
    direct = MembershipInferenceBlackBox(cnn_classifier, attack_model_type="rf")
    seed_everything(21)
    direct.fit(x=xm[m_fit], y=ym[m_fit], test_x=xn[n_fit], test_y=yn[n_fit])
    scores = direct.infer(
        np.concatenate([xm[m_eval], xn[n_eval]]),
        np.concatenate([ym[m_eval], yn[n_eval]]),
        probabilities=True,
    )
    assert np.array_equal(ours["scores"], scores.reshape(-1))
    assert ours["is_member"].tolist() == [1] * 75 + [0] * 75
    result = metrics.membership_inference(ours["scores"], ours["is_member"])
    assert 0.0 <= result["advantage"] <= 1.0 and 0.0 <= result["auc"] <= 1.0


def test_library_copycat_matches_art(cnn_classifier, images: Digits) -> None:
    thief = art_classifier(build_cnn(seed=5))
    pool = images.x_test[:200]
    ours = attacks.copycat(cnn_classifier, thief, pool, query_budget=100, epochs=3, seed=13)
    stolen = copy.deepcopy(thief)
    seed_everything(13)
    direct = CopycatCNN(
        classifier=cnn_classifier,
        batch_size_fit=64,
        batch_size_query=64,
        nb_epochs=3,
        nb_stolen=100,
        use_probability=False,
    ).extract(x=pool, thieved_classifier=stolen)
    for mine, theirs in zip(ours.model.parameters(), direct.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    held_out = images.x_test[200:]
    assert np.array_equal(ours.predict(held_out), direct.predict(held_out))
    result = metrics.extraction(cnn_classifier, ours, held_out, images.y_test[200:])
    assert 0.0 <= result["fidelity"] <= 1.0
    # The thief it was given is untouched.
    assert np.array_equal(
        thief.predict(held_out), art_classifier(build_cnn(seed=5)).predict(held_out)
    )


def test_library_training_is_repeatable_with_a_seed(images: Digits) -> None:
    first = train_cnn(images.x_train[:300], images.y_train[:300], epochs=2, seed=4)
    again = train_cnn(images.x_train[:300], images.y_train[:300], epochs=2, seed=4)
    other = train_cnn(images.x_train[:300], images.y_train[:300], epochs=2, seed=5)
    pairs = zip(first.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(first.classifier[0].weight, other.classifier[0].weight)


def test_library_seeded_tasks_give_the_same_numbers_when_steps_run_at_once(
    cnn, images: Digits
) -> None:
    """A graph's independent steps run in threads; ART draws from process-wide generators, and
    every ART PyTorch predict draws from torch's. Seeded tasks and predictions hold one
    process-wide lock and restore the generators, so concurrency changes nothing."""
    x, y = images.x_train[:128], images.y_train[:128]

    def outputs(classifier, rows: np.ndarray) -> np.ndarray:
        # Torch ops running in other threads change float results in the last bits: every
        # built-in task computes under the lock, and so does this test.
        with isolated():
            return classifier.predict(rows)

    def train() -> np.ndarray:
        classifier = art_classifier(copy.deepcopy(cnn))
        trained = defences.adversarial_training(
            classifier, x, y, eps=0.1, max_iter=2, ratio=0.5, epochs=1, seed=1
        )
        return outputs(trained, images.x_test[:50])  # under the lock, like every task

    def attack() -> np.ndarray:
        classifier = art_classifier(cnn)
        return attacks.square(classifier, images.x_test[:30], eps=0.2, max_iter=10, seed=2)

    def augment() -> np.ndarray:
        return defences.gaussian_augmentation(x, y, sigma=0.1, seed=3)["x"]

    def copy_model() -> np.ndarray:
        thief = art_classifier(build_cnn(seed=5))
        stolen = attacks.copycat(art_classifier(cnn), thief, x, 64, epochs=2, seed=4)
        return outputs(stolen, images.x_test[:50])

    def predictions() -> float:  # ART's PyTorch predict draws from torch's global generator
        classifier = art_classifier(cnn)
        return sum(metrics.accuracy(classifier, x, y) for _ in range(30))

    seeded_tasks = (train, attack, augment, copy_model)
    alone = [task() for task in seeded_tasks]
    with ThreadPoolExecutor(max_workers=6) as pool:
        noise = [pool.submit(predictions) for _ in range(2)]
        futures = [pool.submit(task) for task in seeded_tasks + seeded_tasks]
        together = [f.result() for f in futures]
        assert all(n.result() > 0 for n in noise)
    for expected, got in zip(alone + alone, together, strict=True):
        assert np.array_equal(expected, got)
