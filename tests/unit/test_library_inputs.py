"""Bad input to a library task raises ValueError naming the task and the input: wrong shapes,
eps out of range, poison fraction outside (0, 1), missing model URIs, and the like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from theodolite_attacks import tasks as attacks
from theodolite_data import tasks as data
from theodolite_defences import tasks as defences
from theodolite_metrics import tasks as metrics
from theodolite_models import tasks as models

from tests.fixtures import library
from tests.fixtures.library import Digits

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn_classifier, lr_classifier = library.cnn_classifier, library.lr_classifier
images, flat = library.images, library.flat


def raises(task: str, field: str, *more: str):
    """Expect a ValueError whose message names the task and the input (and more words)."""
    pattern = f"{task}: input '{field}'" + "".join(f".*{m}" for m in more)
    return pytest.raises(ValueError, match=pattern)


def test_library_wrong_shapes_are_refused(cnn_classifier, lr_classifier, images, flat) -> None:
    with raises("attacks.pgd", "x", r"rows of shape \[64\]", r"takes \[1, 8, 8\]"):
        attacks.pgd(cnn_classifier, flat.x_test, eps=0.1)
    with raises("attacks.fgm", "x", r"rows of shape \[1, 8, 8\]"):
        attacks.fgm(lr_classifier, images.x_test, eps=0.1)
    with raises("attacks.robustness_sweep", "y", "one label per row"):
        attacks.robustness_sweep(cnn_classifier, images.x_test, images.y_test[:10], eps=[0.1])
    with raises("models.train_cnn", "x", "images"):
        models.train_cnn(flat.x_train, flat.y_train, epochs=1)
    with raises("models.train_mlp", "x", "flat rows"):
        models.train_mlp(images.x_train, images.y_train)
    with raises("models.train_torch_mlp", "y", "one label per row"):
        models.train_torch_mlp(flat.x_train, flat.y_train[:-1], epochs=1)
    with raises("metrics.robustness", "x_adv", "shape"):
        metrics.robustness(cnn_classifier, images.x_test, images.x_test[:10], images.y_test)
    with raises("metrics.accuracy", "x", "rows of shape"):
        metrics.accuracy(cnn_classifier, flat.x_test, flat.y_test)
    with raises("data.reshape", "shape", r"\[3, 3\]"):
        data.reshape(flat.x_test, [3, 3])
    with raises("defences.spatial_smoothing", "classifier", "images"):
        defences.spatial_smoothing(lr_classifier)
    with raises("defences.adversarial_training", "classifier", "PyTorch"):
        defences.adversarial_training(lr_classifier, flat.x_train, flat.y_train)
    with raises("attacks.copycat", "query_budget", r"\[1, 20\]"):
        thief = models.art_classifier(models.build_cnn(seed=0))
        attacks.copycat(cnn_classifier, thief, images.x_test[:20], query_budget=50)
    with raises("attacks.backdoor_poison", "x", "image_shape"):
        attacks.backdoor_poison(flat.x_train, flat.y_train, 0.1)


def test_library_inputs_outside_the_clip_range_are_refused(cnn_classifier, images) -> None:
    with raises("attacks.pgd", "x", "outside the classifier's clip range"):
        attacks.pgd(cnn_classifier, images.x_test * 16, eps=0.1)


def test_library_eps_out_of_range_is_refused(cnn_classifier, images: Digits) -> None:
    x = images.x_test[:10]
    for eps in (-0.1, 1.5, float("nan")):
        with raises("attacks.pgd", "eps", r"\[0, 1\]", "L-inf"):
            attacks.pgd(cnn_classifier, x, eps=eps)
    with raises("attacks.fgm", "eps", r"\[0, 8\]", "L2"):
        attacks.fgm(cnn_classifier, x, eps=9.0, norm="2")
    with raises("attacks.square", "eps"):
        attacks.square(cnn_classifier, x, eps=2.0)
    with raises("attacks.robustness_sweep", "eps"):
        attacks.robustness_sweep(cnn_classifier, x, images.y_test[:10], eps=[0.1, 1.2])
    with raises("attacks.pgd", "eps_step"):
        attacks.pgd(cnn_classifier, x, eps=0.1, eps_step=0.5)
    with raises("defences.adversarial_training", "eps"):
        defences.adversarial_training(cnn_classifier, images.x_train, images.y_train, eps=0.0)
    with raises("attacks.pgd", "norm"):
        attacks.pgd(cnn_classifier, x, eps=0.1, norm="3")  # type: ignore[arg-type]
    assert np.array_equal(attacks.pgd(cnn_classifier, x, eps=0.0), x)  # eps 0: no change


def test_library_poison_fraction_outside_zero_one_is_refused(images: Digits) -> None:
    for fraction in (0.0, 1.0, -0.2, 1.5):
        with raises("attacks.backdoor_poison", "poison_fraction", r"\(0, 1\)"):
            attacks.backdoor_poison(images.x_train, images.y_train, fraction)
    with raises("attacks.backdoor_poison", "poison_fraction", "gives 0 rows"):
        attacks.backdoor_poison(images.x_train, images.y_train, 0.0001)
    with raises("attacks.backdoor_poison", "target_label"):
        attacks.backdoor_poison(images.x_train, images.y_train, 0.1, target_label=12)


def test_library_missing_model_uris_are_refused(tmp_path: Path) -> None:
    with raises("models.load_model", "uri", "is empty"):
        models.load_model("  ")
    with raises("models.load_model", "uri", "names no MLflow model", "nowhere"):
        models.load_model(str(tmp_path / "nowhere"))
    with raises("models.load_model", "uri", "expected models:/"):
        models.load_model("ftp://example.org/model")


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_library_missing_model_in_the_registry_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with raises("models.load_model", "uri", "models:/no-such-model/3", "not found"):
        models.load_model("models:/no-such-model/3")


def test_library_missing_data_files_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    with raises("data.load_file", "uri", "is no file"):
        data.load_file(str(tmp_path / "missing.csv"))
    (tmp_path / "notes.txt").write_text("a,b\n1,2\n")
    with raises("data.load_file", "uri", "only .csv and .npz"):
        data.load_file(str(tmp_path / "notes.txt"))
    np.savez(tmp_path / "d.npz", inputs=np.zeros((10, 4)), y=np.arange(10) % 2)
    with raises("data.load_file", "x_key", "no array 'x'"):
        data.load_file(str(tmp_path / "d.npz"))
    with raises("data.digits", "test_size"):
        data.digits(test_size=1.5)
    with raises("data.digits", "train_size"):
        data.digits(test_size=0.5, train_size=1500)


def test_library_other_inputs_are_checked(cnn_classifier, images: Digits) -> None:
    with raises("defences.feature_squeezing", "bit_depth"):
        defences.feature_squeezing(cnn_classifier, bit_depth=0)
    with raises("defences.jpeg_compression", "quality"):
        defences.jpeg_compression(cnn_classifier, quality=0)
    with raises("attacks.membership_inference", "attack_train_fraction"):
        attacks.membership_inference(
            cnn_classifier,
            images.x_train,
            images.y_train,
            images.x_test,
            images.y_test,
            attack_train_fraction=1.0,
        )
    with raises("metrics.membership_inference", "is_member", "both"):
        metrics.membership_inference(np.ones(4), np.ones(4))
    with raises("attacks.pgd", "classifier", "ART classifier"):
        attacks.pgd(object(), images.x_test, eps=0.1)  # type: ignore[arg-type]
    with raises("attacks.pgd", "seed"):
        attacks.pgd(cnn_classifier, images.x_test[:5], eps=0.1, seed=-1)
    with raises("models.log_model", "name"):
        models.log_model(cnn_classifier, name="bad/name")
