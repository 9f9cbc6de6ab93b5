"""Pipelines through the HTTP API on the real stack: stages run as jobs that wait on their
upstream stages, their references resolve from what those produced (a run's artifacts, metrics,
params), a failure skips what follows, a cancel ends what has not, and a bad pipeline is refused
whole with nothing created. In MLflow the stages' runs nest under the pipeline's parent run."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack, queue_with_worker
from tests.integration.helpers import create_experiment, upload_ok, wait_until

MLPROJECT = """\
name: stages
entry_points:
  write:
    parameters:
      text: {type: string, default: hello}
      score: {type: float, default: 0.5}
      seconds: {type: float, default: 0}
      code: {type: int, default: 0}
    command: "python write.py {text} {score} {seconds} {code}"
  read:
    parameters:
      source: {type: string}
      score: {type: float, default: 0}
      count: {type: int, default: 0}
      seconds: {type: float, default: 0}
    command: "python read.py {source} {score} {count} {seconds}"
"""
# Logs an artifact, a metric and a parameter of its own run, after ``seconds``.
WRITE = """\
import os, sys, time
from mlflow.tracking import MlflowClient
text, score, seconds, code = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
time.sleep(seconds)
client, run = MlflowClient(), os.environ["MLFLOW_RUN_ID"]
client.log_text(run, text, "out.txt")
client.log_metric(run, "score", score)
client.log_param(run, "word", text)
print("wrote", text)
sys.exit(code)
"""
# Prints what it was given; a runs:/ source is downloaded through MLflow and printed.
READ = """\
import sys, time
source, score, count, seconds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
time.sleep(seconds)
if source.startswith("runs:/"):
    import mlflow
    path = mlflow.artifacts.download_artifacts(artifact_uri=source)
    print("read", open(path).read())
else:
    print("given", source)
print("score", score)
"""
ENDED = {"succeeded", "failed", "cancelled"}


UID_BASE = 180_000  # the two-slot worker's sandbox uids


@pytest.fixture(scope="module")
def two_slots(stack: Stack) -> Iterator[str]:
    """A queue whose worker runs two jobs at once (the stack's own has one slot)."""
    env = {
        "THEODOLITE_WORKER_SLOTS": "2",
        "THEODOLITE_WORKER_SANDBOX_UID_BASE": str(UID_BASE),
        "THEODOLITE_WORKER_WARM_POOL_PRELOAD": '["json"]',
    }
    with queue_with_worker(stack, "pipelines", env) as name:
        yield name


@pytest.fixture
def target(api: httpx.Client) -> dict[str, str]:
    """An experiment and the archive with the ``write`` and ``read`` entry points."""
    archive = upload_ok(api, make_tar({"MLproject": MLPROJECT, "write.py": WRITE, "read.py": READ}))
    return {"experiment_id": create_experiment(api)["id"], "entrypoint_id": archive["id"]}


def _stage(target: dict[str, str], entry_point: str, **fields: Any) -> dict[str, Any]:
    return {"entrypoint_id": target["entrypoint_id"], "entry_point": entry_point, **fields}


def _create(api: httpx.Client, target: dict[str, str], stages: dict[str, Any]) -> dict[str, Any]:
    body = {"experiment_id": target["experiment_id"], "name": "p", "stages": stages}
    response = api.post("/pipelines", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def _wait(api: httpx.Client, pipeline_id: str, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        pipeline = api.get(f"/pipelines/{pipeline_id}").json()
        if pipeline["status"] in ENDED:
            return pipeline
        assert time.monotonic() < deadline, f"pipeline still {pipeline['status']}: {pipeline}"
        time.sleep(0.5)


def _stages(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["name"]: stage for stage in pipeline["stages"]}


def _job(api: httpx.Client, pipeline: dict[str, Any], stage: str) -> dict[str, Any]:
    (only,) = _stages(pipeline)[stage]["jobs"]
    return api.get(f"/jobs/{only['job_id']}").json()


def _log(api: httpx.Client, job_id: str) -> str:
    return api.get(f"/jobs/{job_id}/logs").text


def _run(stack: Stack, run_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.config.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}
    )
    run: dict[str, Any] = response.json()["run"]
    return run


def _tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _history(job: dict[str, Any]) -> list[str]:
    return [step["status"] for step in job["history"]]


def test_a_second_stage_reads_the_first_ones_artifact_metric_and_param(
    api: httpx.Client, stack: Stack, target: dict[str, str]
) -> None:
    pipeline = _create(
        api,
        target,
        {
            "first": _stage(target, "write", params={"text": "forty-two", "score": 0.75}),
            "second": _stage(
                target,
                "read",
                params={
                    "source": "${first.artifact_uri}/out.txt",
                    "score": "${first.metrics.score}",
                },
            ),
            "third": _stage(target, "read", params={"source": "${second.params.source}"}),
        },
    )
    assert pipeline["status"] == "running" and not pipeline["finished"]
    assert [s["name"] for s in pipeline["stages"]] == ["first", "second", "third"]
    assert _stages(pipeline)["second"]["depends_on"] == ["first"]  # implied by its references
    assert _stages(pipeline)["second"]["status"] == "waiting"
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "succeeded", ended
    first, second, third = (_job(api, ended, name) for name in ("first", "second", "third"))
    run_id = first["mlflow_run_id"]
    assert second["params"]["source"] == f"runs:/{run_id}/out.txt"
    assert second["params"]["score"] == "0.75"
    assert "read forty-two" in _log(api, second["id"])
    assert third["params"]["source"] == f"runs:/{run_id}/out.txt"  # a param of an upstream run
    assert _history(second) == ["waiting", "queued", "running", "succeeded"]
    # In MLflow: one parent run, ended, with every stage's run nested under it.
    parent = _run(stack, ended["mlflow_run_id"])
    assert parent["info"]["status"] == "FINISHED"
    assert _tags(parent)["theodolite.pipeline_id"] == ended["id"]
    for job, stage in ((first, "first"), (second, "second"), (third, "third")):
        tags = _tags(_run(stack, job["mlflow_run_id"]))
        assert tags["mlflow.parentRunId"] == ended["mlflow_run_id"]
        assert tags["theodolite.pipeline_stage"] == stage
    listed = api.get("/pipelines", params={"experiment_id": target["experiment_id"]}).json()
    assert [p["id"] for p in listed["data"]] == [ended["id"]] and listed["count"] == 1


def test_the_branches_of_a_diamond_run_at_the_same_time(
    api: httpx.Client, target: dict[str, str], two_slots: str
) -> None:
    on = {"queue": two_slots}
    pipeline = _create(
        api,
        target,
        {
            "top": _stage(target, "write", **on),
            "left": _stage(target, "read", params={"source": "${top.job_id}", "seconds": 4}, **on),
            "right": _stage(target, "read", params={"source": "${top.run_id}", "seconds": 4}, **on),
            "bottom": _stage(
                target, "read", params={"source": "x"}, depends_on=["left", "right"], **on
            ),
        },
    )
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "succeeded", ended
    left, right, bottom = (_job(api, ended, n) for n in ("left", "right", "bottom"))

    def span(job: dict[str, Any]) -> tuple[str, str]:
        at = {step["status"]: step["at"] for step in job["history"]}
        return at["running"], at["succeeded"]

    (left_start, left_end), (right_start, right_end) = span(left), span(right)
    assert left_start < right_end and right_start < left_end, "the branches overlapped"
    assert span(bottom)[0] >= max(left_end, right_end)
    assert left["params"]["source"] == _job(api, ended, "top")["id"]


def test_a_failed_first_stage_skips_the_stages_after_it_which_never_run(
    api: httpx.Client, stack: Stack, target: dict[str, str]
) -> None:
    pipeline = _create(
        api,
        target,
        {
            "first": _stage(target, "write", params={"code": 3}),
            "second": _stage(target, "read", params={"source": "${first.artifact_uri}"}),
            "third": _stage(target, "read", params={"source": "x"}, depends_on=["second"]),
        },
    )
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "failed"
    stages = _stages(ended)
    assert [stages[n]["status"] for n in ("first", "second", "third")] == [
        "failed",
        "skipped",
        "skipped",
    ]
    for name in ("second", "third"):
        job = _job(api, ended, name)
        assert _history(job) == ["waiting", "skipped"] and job["mlflow_run_id"] is None
    assert _run(stack, ended["mlflow_run_id"])["info"]["status"] == "FAILED"


def test_a_resolved_value_that_does_not_fit_fails_its_stage_with_the_reason(
    api: httpx.Client, target: dict[str, str]
) -> None:
    pipeline = _create(
        api,
        target,
        {
            "first": _stage(target, "write", params={"text": "not-a-number"}),
            "second": _stage(
                target, "read", params={"source": "x", "count": "${first.params.word}"}
            ),
            "third": _stage(target, "read", params={"source": "${first.metrics.missing}"}),
        },
    )
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "failed"
    second, third = _job(api, ended, "second"), _job(api, ended, "third")
    assert second["status"] == "failed" and second["mlflow_run_id"] is None
    assert "params.count" in second["error"] and "not-a-number" in second["error"]
    assert third["status"] == "failed" and "has no metric 'missing'" in third["error"]
    assert "score" in third["error"]  # what the run did log


def test_cancelling_mid_pipeline_ends_every_stage_that_had_not(
    api: httpx.Client, stack: Stack, target: dict[str, str]
) -> None:
    pipeline = _create(
        api,
        target,
        {
            "first": _stage(target, "write", params={"seconds": 120}),
            "second": _stage(target, "read", params={"source": "${first.run_id}"}),
        },
    )
    first_id = _stages(pipeline)["first"]["jobs"][0]["job_id"]
    wait_until(lambda: api.get(f"/jobs/{first_id}").json()["status"] == "running", 60)
    cancelling = api.post(f"/pipelines/{pipeline['id']}/cancel")
    assert cancelling.status_code == 202, cancelling.text
    assert _stages(cancelling.json())["second"]["status"] == "cancelled"  # at once: it waited
    ended = _wait(api, pipeline["id"], timeout_s=90)
    assert ended["status"] == "cancelled"
    assert {s["status"] for s in ended["stages"]} == {"cancelled"}
    assert _run(stack, ended["mlflow_run_id"])["info"]["status"] == "KILLED"
    again = api.post(f"/pipelines/{pipeline['id']}/cancel")
    assert again.status_code == 409


def test_a_sweep_stage_runs_per_point_and_a_fan_in_once_after_all(
    api: httpx.Client, target: dict[str, str]
) -> None:
    pipeline = _create(
        api,
        target,
        {
            "points": _stage(target, "write", sweep={"grid": {"score": [0.25, 0.5, 1]}}),
            "each": _stage(target, "read", params={"source": "${points.run_id}"}),
            "total": _stage(
                target, "read", params={"source": "${points.metrics.score}"}, fan_in=True
            ),
        },
    )
    stages = _stages(pipeline)
    assert [job["point"] for job in stages["points"]["jobs"]] == [
        {"score": 0.25},
        {"score": 0.5},
        {"score": 1},
    ]
    assert len(stages["each"]["jobs"]) == 3 and len(stages["total"]["jobs"]) == 1
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "succeeded", ended
    stages = _stages(ended)
    runs = [job["mlflow_run_id"] for job in stages["points"]["jobs"]]
    each = [api.get(f"/jobs/{j['job_id']}").json() for j in stages["each"]["jobs"]]
    assert [job["params"]["source"] for job in each] == runs  # each follows its own point
    (total,) = stages["total"]["jobs"]
    source = api.get(f"/jobs/{total['job_id']}").json()["params"]["source"]
    assert json.loads(source) == [0.25, 0.5, 1.0]


def test_every_invalid_pipeline_is_refused_with_every_problem_and_nothing_created(
    api: httpx.Client, target: dict[str, str]
) -> None:
    def jobs_and_pipelines() -> tuple[int, int]:
        scope = {"experiment_id": target["experiment_id"]}
        return (
            api.get("/jobs", params=scope).json()["count"],
            api.get("/pipelines", params=scope).json()["count"],
        )

    def problems(stages: dict[str, Any], experiment_id: str | None = None) -> set[tuple[str, str]]:
        body = {
            "experiment_id": experiment_id or target["experiment_id"],
            "name": "bad",
            "stages": stages,
        }
        response = api.post("/pipelines", json=body)
        assert response.status_code == 422, response.text
        return {(p["field"], p["message"]) for p in response.json()["problems"]}

    before = jobs_and_pipelines()
    assert problems(
        {
            "a": _stage(target, "write", depends_on=["b"]),
            "b": _stage(target, "read", params={"source": "${a.run_id}"}),
            "c": _stage(target, "read", params={"source": "x"}, depends_on=["c"]),
        }
    ) == {
        ("stages", "cycle: a -> b -> a"),
        ("stages.b.params.source", "${a.run_id}: 'a' is not upstream of 'b' (cycle: a -> b -> a)"),
        ("stages.c.depends_on.0", "a stage cannot depend on itself"),
    }
    found = problems(
        {
            "a": _stage(target, "write", depends_on=["nowhere"]),
            "b": _stage(target, "read", params={"source": "${z.run_id}"}, depends_on=["a", "a"]),
            "c": _stage(target, "read", params={"source": "${b.bogus}"}, depends_on=["b"]),
            "d": _stage(target, "read", params={"source": "${d.job_id}"}),
            "e": _stage(target, "read", params={"source": "x"}, fan_in=True),
        }
    )
    assert found == {
        ("stages.a.depends_on.0", "no stage 'nowhere' (stages: a, b, c, d, e)"),
        ("stages.b.depends_on.1", "'a' named twice"),
        ("stages.b.params.source", "${z.run_id}: no stage 'z' (stages: a, b, c, d, e)"),
        (
            "stages.c.params.source",
            "bad reference ${b.bogus}: give "
            "${<stage>.run_id|artifact_uri|job_id|metrics.<key>|params.<key>}",
        ),
        ("stages.d.params.source", "${d.job_id}: a stage cannot reference itself"),
        ("stages.e.fan_in", "no upstream stage is a sweep"),
    }
    # Parameters as for a single job, each said where it is: literal values are typed now.
    found = problems(
        {
            "a": _stage(target, "write", params={"score": "high", "colour": "red"}),
            "b": _stage(target, "read", params={"count": "${a.metrics.score}"}),
            "c": _stage(target, "nope", queue="no-such-queue"),
            "d": _stage(target, "write", sweep={"grid": {"score": [1, "x"]}}),
            "e": _stage(target, "write", sweep={"grid": {"code": []}}),
        }
    )
    fields = {field for field, _ in found}
    assert {
        "stages.a.params.score",
        "stages.a.params.colour",
        "stages.b.params.source",  # required, and missing
        "stages.c.entry_point",
        "stages.c.queue",
        "stages.e.sweep.grid.code",
        "stages.d.sweep.grid.score.1",
    } <= fields
    assert "stages.b.params.count" not in fields  # a reference is typed once resolved
    wide = problems(
        {
            "a": _stage(target, "write", sweep={"grid": {"score": list(range(101))}}),
            "b": _stage(target, "read", params={"source": "${a.run_id}"}, fan_in=True),
        }
    )
    assert wide == {("stages.b", "it waits on 101 jobs; at most 100")}
    unknown = problems({"a": _stage(target, "write")}, experiment_id=str(uuid.uuid4()))
    assert unknown == {("experiment_id", "no such experiment")}
    assert jobs_and_pipelines() == before


def test_a_hostile_upstream_value_reaches_the_next_stage_as_one_quoted_argument(
    api: httpx.Client, target: dict[str, str]
) -> None:
    # An upstream job logs whatever it likes; a downstream command must get it as data.
    hostile = "x'; echo INJECTED; $(echo SUBSHELL) `echo TICK` $HOME && exit 3"
    pipeline = _create(
        api,
        target,
        {
            "first": _stage(target, "write", params={"text": hostile}),
            "second": _stage(target, "read", params={"source": "${first.params.word}"}),
        },
    )
    ended = _wait(api, pipeline["id"])
    assert ended["status"] == "succeeded", ended
    second = _job(api, ended, "second")
    assert second["params"]["source"] == hostile
    output = [
        line for line in _log(api, second["id"]).splitlines() if not line.startswith("[theodolite]")
    ]
    # Printed whole, once; nothing of it ran (no INJECTED, SUBSHELL or TICK line, no exit 3).
    assert output == [f"given {hostile}", "score 0.0"]
