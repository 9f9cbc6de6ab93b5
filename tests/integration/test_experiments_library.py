"""The six experiments in examples/ end to end through the api, RabbitMQ, the worker, Prefect
and MLflow, at small sizes: each job succeeds, logs its metrics, and stores its figures and its
HTML report as artifacts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.stack import Stack
from tests.integration.helpers import (
    create_experiment,
    metrics_of,
    run_job,
    upload_ok,
    wait_until,
)

EPS = ("0", "0.05", "0.1", "0.2", "0.3")


@pytest.fixture(scope="module")
def library_ready(stack: Stack) -> None:
    """The worker announces its plugins when it starts: wait until the library's are known."""
    with httpx.Client(base_url=stack.api, headers=stack.headers) as client:
        wait_until(
            lambda: (
                {"defences.adversarial_training", "attacks.copycat"}
                <= {t["reference"] for t in client.get("/tasks").json()["data"]}
            ),
            timeout_s=90,
            what="the worker's plugin announcement",
        )


def run_example(
    api: httpx.Client, example_archive: Any, name: str, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float], set[str]]:
    """Upload ``examples/<name>``, run it with ``params``; the job, its metrics, its artifacts."""
    stored = upload_ok(api, example_archive(name))
    assert stored["graph"]["valid"], stored["graph"]["problems"]
    target = {"experiment_id": create_experiment(api)["id"], "entrypoint_id": stored["id"]}
    job = run_job(api, target, params, timeout_s=240)
    assert job["status"] == "succeeded", job.get("error") or job["log_tail"]
    metrics = metrics_of(api, job["id"])
    artifacts = {a["path"] for a in api.get(f"/jobs/{job['id']}/artifacts").json()["data"]}
    return job, metrics, artifacts


def assert_figures_and_report(
    api: httpx.Client, job: dict[str, Any], artifacts: set[str], figures: list[str]
) -> None:
    for figure in figures:
        assert figure in artifacts, sorted(artifacts)
        png = api.get(f"/jobs/{job['id']}/artifacts/{figure}")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    report = api.get(f"/jobs/{job['id']}/artifacts/report.html")
    assert report.status_code == 200
    assert report.text.startswith("<!doctype html>") and "data:image/png;base64," in report.text


def test_evasion_curve_experiment(
    api: httpx.Client, stack: Stack, example_archive: Any, library_ready: None
) -> None:
    params = {"train_size": 300, "test_size": 100, "epochs": 3, "max_iter": 100, "pgd_iter": 5}
    job, metrics, artifacts = run_example(api, example_archive, "evasion-curve", params)
    for series in ("lr_fgsm", "lr_pgd", "cnn_fgsm", "cnn_pgd"):
        curve = [metrics[f"{series}.{eps}"] for eps in EPS]
        assert curve[0] > 0.5 and curve[-1] < curve[0], (series, curve)
    assert metrics["cnn_pgd_eps_0.1.perturbation_linf"] == pytest.approx(0.1, abs=1e-5)
    assert metrics["cnn_pgd_eps_0.1.robust_accuracy"] == metrics["cnn_pgd.0.1"]
    figures = [
        "figures/robustness_curve.png",
        "figures/image_grid.png",
        "figures/confusion_matrix.png",
    ]
    assert_figures_and_report(api, job, artifacts, figures)
    # The CNN was logged in the job's run and registered.
    versions = httpx.get(
        f"{stack.config.mlflow_url}/api/2.0/mlflow/registered-models/get",
        params={"name": "digits-cnn"},
    ).json()["registered_model"]["latest_versions"]
    assert any(v["run_id"] == job["mlflow_run_id"] for v in versions), versions


def _defences(metrics: dict[str, float]) -> None:
    for defence in ("none", "feature_squeezing", "spatial_smoothing", "jpeg_compression"):
        values = {k: metrics[f"{defence}.{k}"] for k in ("clean", "non_adaptive", "adaptive")}
        assert metrics[f"{defence}.worst_case"] <= min(values.values()), (defence, values)
    assert metrics["gaussian_augmentation.clean"] > 0.3
    assert metrics["none.non_adaptive"] < metrics["none.clean"]


def _backdoor_poisoning(metrics: dict[str, float]) -> None:
    for fraction in ("0", "0.005", "0.01", "0.02", "0.05", "0.1"):
        assert 0.0 <= metrics[f"poison_{fraction}.attack_success_rate"] <= 1.0
        assert 0.0 <= metrics[f"poison_{fraction}.clean_accuracy"] <= 1.0
    assert metrics["poison_0.1.attack_success_rate"] > metrics["poison_0.attack_success_rate"]


def _membership_inference(metrics: dict[str, float]) -> None:
    for model in ("overfit", "regularised"):
        assert 0.0 <= metrics[f"{model}.auc"] <= 1.0
        assert 0.0 <= metrics[f"{model}.advantage"] <= 1.0
    assert metrics["overfit_train_accuracy"] >= metrics["regularised_train_accuracy"]


def _model_extraction(metrics: dict[str, float]) -> None:
    for budget in (25, 50, 100, 200, 400):
        assert 0.0 <= metrics[f"budget_{budget}.fidelity"] <= 1.0
    assert metrics["budget_400.fidelity"] > metrics["budget_25.fidelity"] + 0.2


def _adversarial_training(metrics: dict[str, float]) -> None:
    for model in ("standard", "pgd_trained_0.1", "pgd_trained_0.2"):
        assert metrics[f"{model}.0.3"] <= metrics[f"{model}.0"], model


# (example, its parameters, what its metrics must show, the figures it stores)
EXPERIMENTS = [
    (
        "defences",
        {"train_size": 300, "test_size": 100, "epochs": 3, "pgd_iter": 5},
        _defences,
        ["figures/defences.png", "figures/image_grid.png"],
    ),
    (
        "backdoor-poisoning",
        {"train_size": 300, "test_size": 100, "epochs": 3},
        _backdoor_poisoning,
        ["figures/backdoor_curve.png", "figures/image_grid.png"],
    ),
    (
        "membership-inference",
        {"test_size": 100, "max_iter": 200},
        _membership_inference,
        ["figures/membership_inference.png"],
    ),
    (
        "model-extraction",
        {"train_size": 300, "test_size": 600, "epochs": 5, "thief_epochs": 10},
        _model_extraction,
        ["figures/extraction_curve.png"],
    ),
    (
        "adversarial-training",
        {"train_size": 300, "test_size": 100, "epochs": 2, "pgd_iter": 5},
        _adversarial_training,
        ["figures/robustness_curve.png", "figures/image_grid.png"],
    ),
]


@pytest.mark.parametrize(
    ("name", "params", "check_metrics", "figures"),
    EXPERIMENTS,
    ids=[experiment[0] for experiment in EXPERIMENTS],
)
def test_library_experiment(
    api: httpx.Client,
    example_archive: Any,
    library_ready: None,
    name: str,
    params: dict[str, Any],
    check_metrics: Callable[[dict[str, float]], None],
    figures: list[str],
) -> None:
    job, metrics, artifacts = run_example(api, example_archive, name, params)
    check_metrics(metrics)
    assert_figures_and_report(api, job, artifacts, figures)
