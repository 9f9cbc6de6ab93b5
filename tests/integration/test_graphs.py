"""Graph entry points end to end: through the api, RabbitMQ, the worker, Prefect and MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack
from tests.integration.helpers import (
    create_experiment,
    job_target,
    metrics_of,
    run_job,
    submit,
    upload,
    upload_ok,
    wait_until,
)

GRAPH_TASKS = (Path(__file__).parents[1] / "fixtures" / "graph_tasks.py").read_text()


def graph_archive(graph: str, parameters: str = "", args: str = "") -> bytes:
    mlproject = (
        "name: graph-test\nentry_points:\n  main:\n"
        f"    parameters: {{{parameters}}}\n"
        f"    command: 'theodolite run-graph graph.yaml {args}'\n"
    )
    return make_tar({"MLproject": mlproject, "graph.yaml": graph, "graph_tasks.py": GRAPH_TASKS})


@pytest.fixture(scope="module")
def catalogue_ready(stack: Stack) -> None:
    """The worker announces its plugins when it starts: wait for them to reach the api."""
    with httpx.Client(base_url=stack.api, headers=stack.headers) as client:
        wait_until(
            lambda: any(
                t["reference"] == "data.load_digits" for t in client.get("/tasks").json()["data"]
            ),
            timeout_s=60,
            what="the worker's plugin announcement",
        )


def run_graph_job(
    api: httpx.Client, archive: bytes, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    return run_job(api, job_target(api, archive), params or {})


DIAMOND = """
local_plugins: {testing: graph_tasks}
parameters: {x: {type: float, default: 2}}
steps:
  src: {task: testing.source, inputs: {x: $x}}
  left: {task: testing.slow_add, inputs: {value: $src.a, delay: 1.5}}
  right: {task: testing.slow_add, inputs: {value: $src.b, delay: 1.5}}
  sum: {task: testing.total, inputs: {items: [$left, $right]}}
outputs:
  left: {from: $left, kind: metric}
  right: {from: $right, kind: metric}
  total: {from: $sum, kind: metric}
"""


def test_independent_steps_of_a_diamond_overlap(api: httpx.Client, catalogue_ready: None) -> None:
    job = run_graph_job(
        api, graph_archive(DIAMOND, "x: {type: float, default: 2}", "-P x={x}"), {"x": 5}
    )
    assert job["status"] == "succeeded", job["log_tail"]
    metrics = metrics_of(api, job["id"])
    assert metrics["total"] == 6 + 11
    assert metrics["left.started"] < metrics["right.ended"]
    assert metrics["right.started"] < metrics["left.ended"]
    for step in ("src", "left", "right", "sum"):
        assert f"step.{step}.duration_s" in metrics
    assert metrics["step.left.duration_s"] >= 1.5
    assert job["progress"]["step"] == "src" and job["progress"]["message"] == "made a pair"


FLAKY = """
local_plugins: {testing: graph_tasks}
steps:
  flaky: {task: testing.flaky, inputs: {value: 4.0}, retries: 1}
outputs:
  value: {from: $flaky, kind: metric}
"""
EXPLODING = """
local_plugins: {testing: graph_tasks}
steps:
  src: {task: testing.source}
  explode: {task: testing.boom, inputs: {value: $src.a}}
  after: {task: testing.slow_add, inputs: {value: $explode, delay: 0}}
"""


def test_a_step_that_fails_once_succeeds_with_a_retry(
    api: httpx.Client, catalogue_ready: None
) -> None:
    job = run_graph_job(api, graph_archive(FLAKY))
    assert job["status"] == "succeeded", job["log_tail"]
    assert metrics_of(api, job["id"])["value"] == 4.0
    assert "flaky fails on its first attempt" in api.get(f"/jobs/{job['id']}/logs").text


def test_a_failing_step_fails_the_job_naming_the_step(
    api: httpx.Client, catalogue_ready: None
) -> None:
    job = run_graph_job(api, graph_archive(EXPLODING))
    assert job["status"] == "failed"
    assert (
        "step 'explode' (testing.boom) failed: ValueError: boom cannot handle 1.0" in job["error"]
    )
    logs = api.get(f"/jobs/{job['id']}/logs").text
    assert "Traceback" in logs and "boom cannot handle 1.0" in logs


BAD_GRAPH = """
parameters: {label: string}
steps:
  data: {task: data.load_digits, inputs: {test_size: 'a lot', shuffle: true}}
  model: {task: models.train_logistic_regression, inputs: {x: $data.x_train, y: $data.labels}}
  attack: {task: attacks.fgsm, inputs: {model: $model, x: $data.x_test, eps: $label}}
  ghost: {task: nosuch.task}
  a: {task: metrics.evaluate, inputs: {model: $model, x: $b, y: $data.y_test}}
  b: {task: attacks.fgsm, inputs: {model: $model, x: $a, eps: 0.1}}
"""
EXPECTED = {
    "graph.steps.data.inputs.test_size": "'a lot' does not fit",
    "graph.steps.data.inputs.shuffle": "unknown input of load_digits",
    "graph.steps.model.inputs.y": "has no output 'labels'",
    "graph.steps.attack.inputs.eps": "$label gives string",
    "graph.steps.ghost.task": "unknown plugin 'nosuch'",
    "graph.steps.b.inputs.x": "$a gives object, but the input expects numpy.ndarray",
    "graph.steps.a": "cycle: a -> b -> a",
}


def test_graph_problems_are_reported_at_upload_submission_and_validate(
    api: httpx.Client, catalogue_ready: None
) -> None:
    archive = graph_archive(BAD_GRAPH, "label: string", "-P label={label}")

    stored_before = api.get("/entrypoints").json()["count"]
    checked = api.post("/entrypoints/validate", files={"archive": ("g.tar.gz", archive)}).json()
    assert checked["valid"] is False
    assert api.get("/entrypoints").json()["count"] == stored_before  # validate stores nothing

    stored = upload(api, archive)
    assert stored.status_code == 201
    graph = stored.json()["graph"]
    assert graph["valid"] is False
    assert graph["spec"]["steps"]["data"]["task"] == "data.load_digits"
    for problems in (graph["problems"], checked["problems"]):
        found = {p["field"]: p["message"] for p in problems}
        for field, message in EXPECTED.items():
            assert message in found.get(field, ""), (field, found)

    experiment = create_experiment(api)
    response = submit(
        api,
        experiment_id=experiment["id"],
        entrypoint_id=stored.json()["id"],
        params={"label": "x"},
    )
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert set(EXPECTED) <= fields
    assert api.get("/jobs", params={"experiment_id": experiment["id"]}).json()["count"] == 0


def _prefect_flow_run(stack: Stack, name: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.config.prefect_api_url}/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": [name]}}},
    )
    (flow_run,) = response.json()
    return flow_run


def test_digits_evasion_graph_runs_through_the_api(
    api: httpx.Client, stack: Stack, example_archive: Any, catalogue_ready: None
) -> None:
    stored = upload_ok(api, example_archive("digits-evasion"))
    assert stored["graph"]["valid"], stored["graph"]["problems"]
    job = run_graph_job_from(api, stored["id"], {"eps_large": 0.3})
    assert job["status"] == "succeeded", job["log_tail"]

    metrics = metrics_of(api, job["id"])
    assert metrics["clean_accuracy"] > 0.9
    assert metrics["accuracy_eps_small"] < metrics["clean_accuracy"]
    assert (
        metrics["accuracy_eps_large"]
        < metrics["accuracy_eps_medium"]
        < metrics["accuracy_eps_small"]
    )
    assert metrics["perturbation_linf_eps_large"] == pytest.approx(0.3, abs=1e-6)
    assert {f"step.{s}.duration_s" for s in ("data", "model", "attack_large", "curve")} <= set(
        metrics
    )
    for figure in ("figures/robustness_curve.png", "figures/adversarial_examples.png"):
        png = api.get(f"/jobs/{job['id']}/artifacts/{figure}")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"

    flow_run = _prefect_flow_run(stack, f"job-{job['id']}")
    assert flow_run["state_type"] == "COMPLETED"
    task_runs = httpx.post(
        f"{stack.config.prefect_api_url}/task_runs/filter",
        json={"flow_runs": {"id": {"any_": [flow_run["id"]]}}},
    ).json()
    assert len(task_runs) == 11


def run_graph_job_from(
    api: httpx.Client, entrypoint_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    target = {"experiment_id": create_experiment(api)["id"], "entrypoint_id": entrypoint_id}
    return run_job(api, target, params)
