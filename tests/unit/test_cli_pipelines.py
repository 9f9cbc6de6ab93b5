"""Pipelines in the client and the command line: the pipeline file (YAML, -P overrides, the
experiment and stage sources it names), the stage table, and how ``pipelines submit --wait``
exits, against a fake api (httpx.MockTransport)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from pydantic import BaseModel
from rich.console import Console
from typer.testing import CliRunner

from tests.unit.test_cli import ENTRYPOINT, ENTRYPOINT_ID, EXPERIMENT, fake_api
from tests.unit.test_client import NOW, fake
from theodolite.cli import app
from theodolite.cli.pipelines import (
    JOBS_LISTED,
    SpecError,
    StageChanges,
    apply_overrides,
    load_spec,
    resolve_spec,
    stage_table,
)
from theodolite.client import Pipeline

__all__ = ["fake_api"]  # the fixture, shared with test_cli

PIPELINE_ID = str(uuid.uuid4())
FIRST_JOB, SECOND_JOB = str(uuid.uuid4()), str(uuid.uuid4())

SPEC = """\
experiment: chained
stages:
  second:
    source: hello
    params:
      greeting: ${first.run_id}
  first:
    source: ./hello/
    params: {count: 2}
"""


def stage(name: str, status: str, *jobs: dict[str, Any], after: list[str] | None = None) -> Any:
    return {"name": name, "status": status, "depends_on": after or [], "jobs": list(jobs)}


def job(job_id: str, status: str, run_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": status, "mlflow_run_id": run_id, **extra}


def pipeline_body(status: str = "running", *stages: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": PIPELINE_ID,
        "experiment_id": EXPERIMENT["id"],
        "name": "chained",
        "status": status,
        "finished": status != "running",
        "mlflow_run_id": "parent-run",
        "mlflow_run_url": "http://mlflow.test/#/runs/parent-run",
        "created_at": NOW,
        "updated_at": NOW,
        "stages": list(stages),
    }


def _spec_file(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "hello").mkdir(exist_ok=True)
    (tmp_path / "hello" / "MLproject").write_text("name: hello\n")
    path = tmp_path / "chain.yaml"
    path.write_text(text)
    return path


# --- the pipeline file -------------------------------------------------------------------------


def test_the_file_reads_as_the_body_with_references_kept_as_text(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path))
    assert spec["name"] == "chain"  # the file's name, when the file gives none
    assert spec["stages"]["second"]["params"] == {"greeting": "${first.run_id}"}
    assert spec["stages"]["first"]["params"] == {"count": 2}
    named = _spec_file(tmp_path, "name: mine\n" + SPEC)
    assert load_spec(named)["name"] == "mine"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- a\n- b\n", "mapping"),
        ("experiment: x\n", "stages"),
        ("stages: {}\n", "stages"),
        ("stages:\n  first: [1]\n", "stage 'first'"),
        ("stages: {first: [\n", "not YAML"),
    ],
)
def test_a_file_that_is_no_pipeline_is_refused(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(SpecError, match=says):
        load_spec(_spec_file(tmp_path, text))


def test_overrides_set_stage_params_on_a_copy(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path, SPEC + "  third:\n    source: hello\n    params:\n"))
    changed = apply_overrides(
        spec, ["first.count=5", "first.scale=2.5", "third.greeting=a=b", "second.greeting=hi"]
    )
    assert changed["stages"]["first"]["params"] == {"count": "5", "scale": "2.5"}
    assert changed["stages"]["third"]["params"] == {"greeting": "a=b"}  # `params:` left empty
    assert changed["stages"]["second"]["params"] == {"greeting": "hi"}
    assert spec["stages"]["first"]["params"] == {"count": 2}  # the file's spec is untouched


@pytest.mark.parametrize(
    ("pair", "says"),
    [("count=5", "stage.param=value"), ("first.count", "stage.param=value"), ("x.y=1", "second")],
)
def test_a_bad_override_is_a_usage_error(tmp_path: Path, pair: str, says: str) -> None:
    with pytest.raises(typer.BadParameter, match=says):
        apply_overrides(load_spec(_spec_file(tmp_path)), [pair])


class Resolver:
    """What the command line would ask the api: experiments by name, uploads by path."""

    def __init__(self) -> None:
        self.experiments: list[str] = []
        self.uploads: list[Path] = []

    def experiment_id_of(self, name: str) -> str:
        self.experiments.append(name)
        return f"id-of-{name}"

    def entrypoint_id_of(self, path: Path) -> str:
        self.uploads.append(path)
        return f"ep-{len(self.uploads)}"

    def resolve(self, spec: dict[str, Any], folder: Path, experiment: str | None = None) -> Any:
        return resolve_spec(
            spec,
            folder,
            experiment=experiment,
            experiment_id_of=self.experiment_id_of,
            entrypoint_id_of=self.entrypoint_id_of,
        )


def test_sources_are_uploaded_once_from_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")  # relative sources are the file's, not the caller's
    resolver = Resolver()
    spec = load_spec(_spec_file(tmp_path))
    body = resolver.resolve(spec, tmp_path)
    assert resolver.uploads == [(tmp_path / "hello").resolve()]  # two stages, one folder
    assert body["stages"]["first"] == {"entrypoint_id": "ep-1", "params": {"count": 2}}
    assert body["stages"]["second"]["entrypoint_id"] == "ep-1"
    assert "source" not in body["stages"]["second"] and "source" in spec["stages"]["second"]
    assert resolver.experiments == ["chained"]
    assert body["experiment_id"] == "id-of-chained" and "experiment" not in body


def test_the_command_lines_experiment_wins_over_the_files(tmp_path: Path) -> None:
    resolver = Resolver()
    with_id = {"experiment_id": "from-file", "name": "p", "stages": {"a": {"entrypoint_id": "e"}}}
    assert resolver.resolve(with_id, tmp_path)["experiment_id"] == "from-file"
    assert resolver.resolve(with_id, tmp_path, "other")["experiment_id"] == "id-of-other"
    named = load_spec(_spec_file(tmp_path))
    assert resolver.resolve(named, tmp_path, "other")["experiment_id"] == "id-of-other"
    assert resolver.experiments == ["other", "other"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"stages": {"a": {"entrypoint_id": "e"}}}, "no experiment"),
        ({"experiment": "x", "experiment_id": "y", "stages": {"a": {}}}, "not both"),
        ({"experiment": "x", "stages": {"a": {"source": "hello", "entrypoint_id": "e"}}}, "a"),
        ({"experiment": "x", "stages": {"a": {"source": "missing"}}}, "does not exist"),
    ],
)
def test_a_spec_that_names_too_little_or_too_much_is_refused(
    tmp_path: Path, spec: dict[str, Any], says: str
) -> None:
    _spec_file(tmp_path)
    resolver = Resolver()
    with pytest.raises(SpecError, match=says):
        resolver.resolve(spec, tmp_path)
    assert resolver.uploads == []


# --- showing a pipeline ------------------------------------------------------------------------


def _rendered(pipeline: Any) -> str:
    out = Console(record=True, width=200)
    out.print(stage_table(pipeline))
    return out.export_text()


def test_the_stage_table_shows_each_stages_status_jobs_and_runs() -> None:
    sweep_jobs = [job(str(uuid.uuid4()), "succeeded", f"r{i}") for i in range(JOBS_LISTED + 2)]
    sweep_jobs[0]["status"] = "running"
    pipeline = Pipeline.model_validate(
        pipeline_body(
            "running",
            stage("first", "succeeded", job(FIRST_JOB, "succeeded", "run-one")),
            stage("second", "waiting", after=["first"]),
            stage("grid", "running", *sweep_jobs, after=["first"]),
        )
    )
    rows = {line.split("│")[1].strip(): line for line in _rendered(pipeline).splitlines()[4:-1]}
    assert f"pipeline chained {PIPELINE_ID}  running" in _rendered(pipeline)
    assert (
        FIRST_JOB in rows["first"] and "run-one" in rows["first"] and "succeeded" in rows["first"]
    )
    assert "waiting" in rows["second"] and "first" in rows["second"]
    assert f"{JOBS_LISTED + 2} jobs: 1 running, {JOBS_LISTED + 1} succeeded" in rows["grid"]
    assert f"{JOBS_LISTED + 2} runs" in rows["grid"]


def test_plain_output_says_only_what_changed() -> None:
    changes = StageChanges()
    waiting = pipeline_body("running", stage("first", "queued", job(FIRST_JOB, "queued")))
    waiting["stages"].append(stage("second", "waiting", after=["first"]))
    assert changes.lines(Pipeline.model_validate(waiting)) == [
        f"stage first: queued ({FIRST_JOB})",
        "stage second: waiting",
        "pipeline: running",
    ]
    assert changes.lines(Pipeline.model_validate(waiting)) == []
    waiting["stages"][0] = stage("first", "succeeded", job(FIRST_JOB, "succeeded", "run-one"))
    assert changes.lines(Pipeline.model_validate(waiting)) == [
        f"stage first: succeeded ({FIRST_JOB})"
    ]


# --- the client and the command line against a fake api -----------------------------------


def _pipeline_ending(final: str) -> Iterator[dict[str, Any]]:
    """What GET /pipelines/{id} answers, look after look: the first stage runs (for two looks),
    then the end."""
    for _ in range(2):
        yield pipeline_body(
            "running",
            stage("first", "running", job(FIRST_JOB, "running")),
            stage("second", "waiting", after=["first"]),
        )
    second = "succeeded" if final == "succeeded" else "skipped" if final == "failed" else final
    while True:
        yield pipeline_body(
            final,
            stage("first", "succeeded", job(FIRST_JOB, "succeeded", "run-one")),
            stage(
                "second",
                second,
                job(SECOND_JOB, second, error=None if final == "succeeded" else "it ended"),
                after=["first"],
            ),
        )


class FakePipelines:
    """The api's pipeline routes, as far as the command line uses them."""

    def __init__(self, final: str = "succeeded", refusal: dict[str, Any] | None = None) -> None:
        self.looks = _pipeline_ending(final)
        self.refusal = refusal
        self.submitted: list[Any] = []
        self.uploads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/experiments" and request.method == "POST":
            return httpx.Response(201, json=EXPERIMENT)
        if path == "/entrypoints" and request.method == "POST":
            self.uploads += 1
            return httpx.Response(201, json=ENTRYPOINT)
        if path == "/pipelines" and request.method == "POST":
            self.submitted.append(json.loads(request.content))
            if self.refusal is not None:
                return httpx.Response(422, json=self.refusal)
            return httpx.Response(202, json=pipeline_body("running"))
        if path == f"/pipelines/{PIPELINE_ID}":
            return httpx.Response(200, json=next(self.looks))
        raise AssertionError(f"unexpected {request.method} {path}")


def _submit(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["pipelines", "submit", str(_spec_file(tmp_path)), "--poll", "0", *args]
    )


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 3)])
def test_submit_wait_exits_with_how_the_pipeline_ended(
    fake_api: Any, tmp_path: Path, final: str, code: int
) -> None:
    api = FakePipelines(final)
    fake_api(api)
    result = _submit(tmp_path, "-P", "first.count=4", "--wait", "--json")
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["status"] == final
    [body] = api.submitted
    assert body["experiment_id"] == EXPERIMENT["id"] and api.uploads == 1
    assert body["stages"]["first"] == {"entrypoint_id": ENTRYPOINT_ID, "params": {"count": "4"}}
    assert body["stages"]["second"]["params"] == {"greeting": "${first.run_id}"}
    assert f"stage first: running ({FIRST_JOB})" in result.stderr
    assert f"pipeline: {final}" in result.stderr


def test_submit_without_wait_prints_the_id(fake_api: Any, tmp_path: Path) -> None:
    fake_api(FakePipelines())
    result = _submit(tmp_path, "--experiment-name", EXPERIMENT["name"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == PIPELINE_ID


def test_a_refused_pipeline_prints_every_problem(fake_api: Any, tmp_path: Path) -> None:
    problems = [
        {"field": "stages.second.params.greeting", "message": "no stage 'frist'"},
        {"field": "stages.first.params.count", "message": "not an int"},
    ]
    fake_api(FakePipelines(refusal={"title": "Unprocessable", "detail": "2", "problems": problems}))
    result = _submit(tmp_path)
    assert result.exit_code == 2
    for problem in problems:
        assert f"{problem['field']}: {problem['message']}" in result.stderr


def test_waiting_gives_up_after_its_timeout(fake_api: Any, tmp_path: Path) -> None:
    api = FakePipelines()
    api.looks = iter(lambda: pipeline_body("running"), None)  # never ends
    fake_api(api)
    result = _submit(tmp_path, "--wait", "--timeout", "0")
    assert result.exit_code == 4
    assert "still running" in result.stderr


class PipelineBody(BaseModel):
    experiment_id: uuid.UUID
    name: str
    stages: dict[str, dict[str, Any]]


def test_the_client_sends_models_and_ids_as_json_and_waits_for_the_end() -> None:
    api = FakePipelines("failed")
    client = fake(api)
    experiment_id = uuid.UUID(EXPERIMENT["id"])
    stages = {"a": {"entrypoint_id": uuid.UUID(ENTRYPOINT_ID)}}
    client.submit_pipeline({"experiment_id": experiment_id, "name": "p", "stages": stages})
    client.submit_pipeline(PipelineBody(experiment_id=experiment_id, name="p", stages=stages))
    sent = {"experiment_id": EXPERIMENT["id"], "name": "p"}
    assert api.submitted == [{**sent, "stages": {"a": {"entrypoint_id": ENTRYPOINT_ID}}}] * 2
    seen: list[str] = []
    ended = client.wait_pipeline(
        PIPELINE_ID, poll_s=0, on_change=lambda p: seen.append(p.stages[0].status)
    )
    assert ended.finished and ended.status == "failed"
    assert seen == ["running", "succeeded"]  # each change once, however often it looked
    assert ended.stages[1].jobs[0].error == "it ended"
