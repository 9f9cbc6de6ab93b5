"""The model registry through the api, provenance on every run, and reproducible metrics."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack
from tests.integration.helpers import (
    create_experiment,
    job_target,
    metrics_of,
    run_job,
    submit,
    upload_ok,
    wait_for_end,
)

MODEL_TASKS = (Path(__file__).parents[1] / "fixtures" / "model_tasks.py").read_text()


def _archive(graph: str, parameters: str, args: str) -> bytes:
    mlproject = (
        "name: models\nentry_points:\n  main:\n"
        f"    parameters: {{{parameters}}}\n"
        f"    command: 'theodolite run-graph graph.yaml {args}'\n"
    )
    return make_tar({"MLproject": mlproject, "graph.yaml": graph, "model_tasks.py": MODEL_TASKS})


def _one_step(
    parameter: str, kind: str, step: str, task: str, task_input: str, metric: str
) -> bytes:
    """An archive whose graph runs one task of model_tasks.py on one parameter of the entry
    point, passed as ``task_input``, and logs what the task returns as ``metric``."""
    graph = (
        "\nlocal_plugins: {m: model_tasks}\n"
        f"parameters: {{{parameter}: {kind}}}\n"
        f"steps:\n  {step}: {{task: m.{task}, inputs: {{{task_input}: ${parameter}}}}}\n"
        f"outputs:\n  {metric}: {{from: ${step}, kind: metric}}\n"
    )
    return _archive(graph, f"{parameter}: {kind}", f"-P {parameter}={{{parameter}}}")


TRAIN = _one_step("name", "string", "train", "train_and_register", "name", "train_accuracy")
SCORE = _one_step("model", "uri", "score", "score_registered", "model_uri", "accuracy")


def _run(api: httpx.Client, archive: bytes, params: dict[str, Any]) -> dict[str, Any]:
    return run_job(api, job_target(api, archive), params)


def test_a_registered_model_is_listed_and_loaded_by_a_later_job(api: httpx.Client) -> None:
    name = f"digits-lr-{secrets.token_hex(3)}"
    trained = _run(api, TRAIN, {"name": name})
    assert trained["status"] == "succeeded", trained["log_tail"]

    models = {m["name"]: m for m in api.get("/models", params={"limit": 500}).json()["data"]}
    assert models[name]["latest_version"] == "1"
    (version,) = api.get(f"/models/{name}/versions").json()["data"]
    assert version["uri"] == f"models:/{name}/1"
    assert version["run_id"] == trained["mlflow_run_id"]
    assert api.get("/models/no-such-model/versions").status_code == 404

    scored = _run(api, SCORE, {"model": version["uri"]})
    assert scored["status"] == "succeeded", scored["log_tail"]
    trained_metrics = metrics_of(api, trained["id"])
    assert metrics_of(api, scored["id"])["accuracy"] == trained_metrics["train_accuracy"]

    missing = _run(api, SCORE, {"model": f"models:/{name}/9"})
    assert missing["status"] == "failed"
    assert "step 'score' (m.score_registered) failed" in missing["error"]


def _run_tags_and_params(stack: Stack, run_id: str) -> tuple[dict[str, str], dict[str, str]]:
    run = httpx.get(
        f"{stack.config.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}
    ).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    return tags, params


def test_provenance_is_recorded_and_a_rerun_gives_identical_metrics(
    api: httpx.Client, stack: Stack, example_archive: Any
) -> None:
    stored = upload_ok(api, example_archive("digits-evasion"))
    experiment = create_experiment(api)
    jobs = []
    for _ in range(2):
        response = submit(
            api, experiment_id=experiment["id"], entrypoint_id=stored["id"], params={"seed": 3}
        )
        jobs.append(wait_for_end(api, response.json()["id"]))
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs[0]["log_tail"]

    first, second = (
        {k: v for k, v in metrics_of(api, j["id"]).items() if not k.startswith("step.")}
        for j in jobs
    )
    assert first == second and first["clean_accuracy"] > 0.9

    tags, params = _run_tags_and_params(stack, jobs[0]["mlflow_run_id"])
    assert params["seed"] == "3"
    assert tags["theodolite.entrypoint_sha256"] == stored["sha256"]
    for library in ("adversarial-robustness-toolbox", "torch", "scikit-learn", "numpy"):
        assert f"theodolite.version.{library}" in tags
    assert tags["theodolite.version.numpy"][0].isdigit()
    for plugin, pin in jobs[0]["plugin_versions"].items():
        assert tags[f"theodolite.plugin.{plugin}"] == pin["version"]
    assert {"data", "models", "attacks", "metrics", "reports"} <= set(jobs[0]["plugin_versions"])
