"""Model tasks: training, ART wrapping on the job's device, and MLflow models logged in a run,
registered, and loaded back by URI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from art.estimators.classification import PyTorchClassifier
from theodolite_models import tasks as models

from tests.fixtures import library
from tests.fixtures.library import Digits
from tests.fixtures.tasks import running_as
from theodolite.sdk.context import TaskContext

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn, cnn_classifier, lr_classifier = library.cnn, library.cnn_classifier, library.lr_classifier
images, flat = library.images, library.flat


def test_library_models_train_and_wrap(images: Digits, flat: Digits) -> None:
    mlp = models.art_classifier(models.train_mlp(flat.x_train, flat.y_train, max_iter=30))
    torch_mlp = models.art_classifier(
        models.train_torch_mlp(flat.x_train, flat.y_train, epochs=5, seed=1)
    )
    for classifier, x, y in (
        (mlp, flat.x_test, flat.y_test),
        (torch_mlp, flat.x_test, flat.y_test),
    ):
        assert np.mean(np.argmax(classifier.predict(x), axis=1) == y) > 0.85
    assert isinstance(torch_mlp, PyTorchClassifier) and torch_mlp.input_shape == (64,)
    untrained = models.art_classifier(models.build_cnn(seed=3))
    assert untrained.input_shape == (1, 8, 8) and untrained.nb_classes == 10


def test_library_art_classifier_follows_the_jobs_device(
    cnn, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert models.art_classifier(cnn).device.type == "cpu"
    monkeypatch.setenv("THEODOLITE_DEVICE", "cuda")  # a GPU worker; ART falls back without one
    assert models.art_classifier(cnn)._device_type == "gpu"


def _roundtrip(classifier, x: np.ndarray, context: TaskContext, **log: object) -> dict:
    with running_as(context):
        reference = models.log_model(classifier, **log)  # type: ignore[arg-type]
    uri = reference["registry_uri"] or reference["uri"]
    loaded = models.load_model(uri)
    assert np.array_equal(loaded.predict(x), classifier.predict(x))
    assert loaded.input_shape == classifier.input_shape
    return reference


def test_library_models_save_and_load_without_a_run(
    cnn_classifier, lr_classifier, images: Digits, flat: Digits, tmp_path: Path
) -> None:
    context = TaskContext(step="save", seed=0, output_dir=tmp_path)
    saved = _roundtrip(cnn_classifier, images.x_test, context, name="cnn")
    assert saved["flavor"] == "pytorch" and saved["version"] is None
    assert Path(saved["uri"]) == tmp_path / "models" / "cnn"
    saved = _roundtrip(lr_classifier, flat.x_test, context, name="lr")
    assert saved["flavor"] == "sklearn"


# MLflow's SQL store uses a loader strategy SQLAlchemy 2.1 deprecates.
SQLITE_STORE = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


@SQLITE_STORE
def test_library_models_log_register_and_load_in_a_run(
    cnn_classifier,
    lr_classifier,
    images: Digits,
    flat: Digits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.create_experiment("library")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)  # as the worker sets it
    run = client.create_run(experiment).info.run_id
    context = TaskContext(step="log", seed=0, mlflow_run_id=run)
    logged = _roundtrip(
        cnn_classifier, images.x_test, context, name="cnn", register_as="digits-cnn"
    )
    assert logged["registry_uri"] == "models:/digits-cnn/1" and logged["version"] == 1
    again = _roundtrip(cnn_classifier, images.x_test, context, name="cnn", register_as="digits-cnn")
    assert again["version"] == 2
    logged = _roundtrip(lr_classifier, flat.x_test, context, name="lr")
    assert logged["uri"].startswith("models:/m-") and logged["registered_name"] is None
    loaded = models.load_model(f"runs:/{run}/lr")
    assert np.array_equal(loaded.predict(flat.x_test), lr_classifier.predict(flat.x_test))
    assert client.get_run(run).info.status == "RUNNING"  # the worker ends the run, not the task
