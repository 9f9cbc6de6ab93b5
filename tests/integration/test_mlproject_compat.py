"""Real MLproject files, written the way real projects write them, run both through the testbed
(HTTP API on the real stack) and through ``mlflow run --env-manager local`` against the same
MLflow server, in the same test: status, logged params and metrics must agree.

MLflow logs a parameter as the shell-quoted text it put into the command (``'[64, 32]'``); the
testbed logs the text itself (``[64, 32]``): docs/mlproject.md names the difference, and the
comparison below applies exactly that quoting and nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack, api, stack
from tests.integration.helpers import create_experiment, unique, upload, wait_for_end

__all__ = ["api", "stack"]

# A training script as tutorials write them: argparse, mlflow.log_metric, nothing else.
TRAIN_PY = """\
import argparse, json, mlflow, sys

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--l1-ratio", type=float, default=0.0)
parser.add_argument("--normalize", default="False")
parser.add_argument("--layers", default="[]")
parser.add_argument("--exit", type=int, default=0)
args = parser.parse_args()
mlflow.log_metric("alpha", args.alpha)
mlflow.log_metric("epochs", args.epochs)
mlflow.log_metric("l1_ratio", args.l1_ratio)
mlflow.log_metric("normalized", 1.0 if args.normalize == "True" else 0.0)
mlflow.log_metric("layers", float(sum(json.loads(args.layers))))
sys.exit(args.exit)
"""

# Type names MLflow accepts and the testbed once refused (str, bool, list), non-string defaults.
TUTORIAL_MLPROJECT = """\
name: tutorial
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: str, default: 0.1}
      normalize: {type: bool, default: false}
      layers: {type: list, default: [64, 32]}
    command: "python train.py --alpha {alpha} --l1-ratio {l1_ratio} --normalize {normalize} --layers {layers}"
"""

RUN_SH = """\
#!/usr/bin/env bash
set -euo pipefail
echo "run.sh got: $*"
python train.py "$@"
"""

MODEL_PY = """\
import mlflow
from sklearn.linear_model import LinearRegression

model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
mlflow.log_metric("slope", float(model.coef_[0]))
mlflow.sklearn.log_model(model, name="linear", pip_requirements=[])
"""


WRITE_PY = """\
import mlflow

mlflow.log_text("1\\n2\\n3.5\\n", "inputs/data.csv")
"""

# A project that reads a file given as a path: MLflow downloads a remote one first.
READ_MLPROJECT = """\
name: reader
entry_points:
  main:
    parameters:
      data: path
      scale: {type: float, default: 1}
    command: "python read.py --data {data} --scale {scale}"
"""

READ_PY = """\
import argparse, os, mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--scale", type=float)
args = parser.parse_args()
print("reading", args.data)
with open(args.data) as lines:
    total = sum(float(line) for line in lines if line.strip())
mlflow.log_metric("total", total * args.scale)
mlflow.log_metric("absolute", float(os.path.isabs(args.data)))
"""


# A project that loads a model given as a path (a models:/ URI is downloaded first).
PREDICT_MLPROJECT = """\
name: predictor
entry_points:
  main:
    parameters:
      model: path
    command: "python predict.py --model {model}"
"""

PREDICT_PY = """\
import argparse, mlflow.sklearn

parser = argparse.ArgumentParser()
parser.add_argument("--model")
model = mlflow.sklearn.load_model(parser.parse_args().model)
mlflow.log_metric("prediction", float(model.predict([[10.0]])[0]))
"""


@dataclass
class Outcome:
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    run_id: str


def _run_data(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
    run = MlflowClient(tracking_uri).get_run(run_id)
    return dict(run.data.params), dict(run.data.metrics)


def through_mlflow(
    stack: Stack, project: Path, entry_point: str, params: dict[str, str], tmp_path: Path
) -> Outcome:
    """``mlflow run PROJECT -e ENTRY_POINT -P ... --env-manager local`` on the stack's MLflow."""
    tracking_uri = stack.config.mlflow_url
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(unique("mlflow-run"))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # MLflow runs .sh files with $SHELL and ``python`` from PATH: the test's own.
        "SHELL": "/bin/bash",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    pairs = [arg for name, value in params.items() for arg in ("-P", f"{name}={value}")]
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(project),
        "-e",
        entry_point,
        "--env-manager",
        "local",
        "--experiment-id",
        experiment_id,
        *pairs,
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    runs = client.search_runs([experiment_id])
    assert len(runs) == 1, done.stderr
    run_id = runs[0].info.run_id
    logged_params, metrics = _run_data(tracking_uri, run_id)
    status = "succeeded" if done.returncode == 0 else "failed"
    return Outcome(status, logged_params, metrics, run_id)


def through_testbed(
    api: httpx.Client,
    stack: Stack,
    archive: bytes,
    entry_point: str,
    params: dict[str, Any],
    filename: str = "project.tar.gz",
    experiment_id: str | None = None,
) -> tuple[Outcome, dict[str, Any], dict[str, Any]]:
    """The same project through the HTTP API (in a new experiment unless given one): the
    outcome, the upload's answer, the job."""
    uploaded = upload(api, archive, filename)
    assert uploaded.status_code in (200, 201), uploaded.text
    entrypoint = uploaded.json()
    response = api.post(
        "/jobs",
        json={
            "experiment_id": experiment_id or create_experiment(api)["id"],
            "entrypoint_id": entrypoint["id"],
            "entry_point": entry_point,
            "params": params,
        },
    )
    assert response.status_code == 202, response.text
    job = wait_for_end(api, response.json()["id"], timeout_s=240)
    assert job["mlflow_run_id"], job
    logged_params, metrics = _run_data(stack.config.mlflow_url, job["mlflow_run_id"])
    return Outcome(job["status"], logged_params, metrics, job["mlflow_run_id"]), entrypoint, job


def assert_same(ours: Outcome, theirs: Outcome) -> None:
    assert ours.status == theirs.status
    # MLflow logs the shell-quoted text it substituted; the testbed the text (see docstring).
    assert {k: shlex.quote(v) for k, v in ours.params.items()} == theirs.params
    assert ours.metrics == theirs.metrics


def _tar(files: dict[str, str]) -> bytes:
    data: dict[str, bytes | str] = {**files}
    return make_tar(data)


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _entry_point(entrypoint: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in entrypoint["entry_points"] if e["name"] == name)


def test_types_mlflow_accepts_and_values_as_mlflow_writes_them(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    """``type: str``/``bool``/``list``, ``default: false`` and a list default, an MLproject
    spelled ``MLProject``; submitted values a boolean and a float."""
    files = {"MLProject": TUTORIAL_MLPROJECT, "train.py": TRAIN_PY}
    ours, entrypoint, _ = through_testbed(
        api, stack, _tar(files), "main", {"normalize": True, "alpha": 0.25}
    )
    theirs = through_mlflow(
        stack, _project(tmp_path, files), "main", {"normalize": "True", "alpha": "0.25"}, tmp_path
    )
    assert ours.status == "succeeded"
    assert_same(ours, theirs)
    assert ours.params == {
        "alpha": "0.25",
        "l1_ratio": "0.1",
        "normalize": "True",
        "layers": "[64, 32]",
    }
    assert ours.metrics["layers"] == 96.0 and ours.metrics["normalized"] == 1.0
    # The warnings are on the entry point: in the upload's answer and when it is read again.
    main = _entry_point(entrypoint, "main")
    assert [w.split(":")[0] for w in main["warnings"]] == [
        "parameter l1_ratio",
        "parameter normalize",
        "parameter layers",
    ]
    again = api.get(f"/entrypoints/{entrypoint['id']}").json()
    assert _entry_point(again, "main")["warnings"] == main["warnings"]
    assert {p["name"]: p["default"] for p in main["parameters"]}["normalize"] == "False"


def test_a_declared_entry_point_still_refuses_undeclared_parameters(
    api: httpx.Client, stack: Stack
) -> None:
    files = {"MLproject": TUTORIAL_MLPROJECT, "train.py": TRAIN_PY}
    entrypoint = upload(api, _tar(files)).json()
    experiment = create_experiment(api)
    response = api.post(
        "/jobs",
        json={
            "experiment_id": experiment["id"],
            "entrypoint_id": entrypoint["id"],
            "params": {"epochs": 3},
        },
    )
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert [p["field"] for p in problems] == ["params.epochs"]


def test_a_python_file_without_an_mlproject(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    """No MLproject at all: ``-e train.py``, parameters appended as ``--name value``."""
    files = {"train.py": TRAIN_PY}
    params = {"alpha": "0.75", "epochs": "4", "layers": "[1, 2]"}
    ours, entrypoint, job = through_testbed(
        api, stack, _tar(files), "train.py", params, filename="bare-project.tar.gz"
    )
    theirs = through_mlflow(stack, _project(tmp_path, files), "train.py", params, tmp_path)
    assert ours.status == "succeeded", job
    assert_same(ours, theirs)
    assert ours.metrics["epochs"] == 4.0 and ours.metrics["layers"] == 3.0
    assert entrypoint["project_name"] == "bare-project"
    assert entrypoint["runnable_files"] == ["train.py"] and entrypoint["entry_points"] == []


def test_a_shell_file_beside_an_mlproject_without_entry_points(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    files = {"MLproject": "name: shell-project\n", "run.sh": RUN_SH, "train.py": TRAIN_PY}
    params = {"epochs": "6", "normalize": "True"}
    ours, entrypoint, job = through_testbed(api, stack, _tar(files), "run.sh", params)
    theirs = through_mlflow(stack, _project(tmp_path, files), "run.sh", params, tmp_path)
    assert ours.status == "succeeded", job
    assert_same(ours, theirs)
    assert ours.metrics["epochs"] == 6.0 and ours.metrics["normalized"] == 1.0
    assert entrypoint["project_name"] == "shell-project"
    assert entrypoint["runnable_files"] == ["run.sh", "train.py"]
    assert "run.sh got: --epochs 6 --normalize True" in api.get(f"/jobs/{job['id']}/logs").text


def test_a_failing_file_fails_in_both(api: httpx.Client, stack: Stack, tmp_path: Path) -> None:
    files = {"train.py": TRAIN_PY}
    params = {"exit": "3", "alpha": "0.5"}
    ours, _, job = through_testbed(api, stack, _tar(files), "train.py", params)
    theirs = through_mlflow(stack, _project(tmp_path, files), "train.py", params, tmp_path)
    assert ours.status == "failed", job
    assert job["exit_code"] == 3
    assert_same(ours, theirs)


def test_logged_models_are_listed_with_the_artifacts(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    files = {"model.py": MODEL_PY}
    ours, _, job = through_testbed(api, stack, _tar(files), "model.py", {})
    theirs = through_mlflow(stack, _project(tmp_path, files), "model.py", {}, tmp_path)
    assert ours.status == "succeeded", job
    assert_same(ours, theirs)
    listed = api.get(f"/jobs/{job['id']}/artifacts").json()["data"]
    models = [a for a in listed if a["kind"] == "model"]
    assert [m["path"] for m in models] == ["models/linear"]
    assert models[0]["uri"].startswith("models:/m-") and models[0]["download_url"] is None
    tracking = MlflowClient(stack.config.mlflow_url)
    logged = tracking.get_logged_model(models[0]["uri"].removeprefix("models:/"))
    assert logged.source_run_id == ours.run_id and logged.name == "linear"
    # mlflow run logged the same model by the same name: the testbed lists what MLflow keeps.
    run = tracking.get_run(theirs.run_id)
    experiment = run.info.experiment_id
    mlflow_models = tracking.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{theirs.run_id}'"
    )
    assert [m.name for m in mlflow_models] == ["linear"]
    files_listed = [a for a in listed if a["kind"] == "file"]
    assert all(a["uri"] == f"runs:/{ours.run_id}/{a['path']}" for a in files_listed)


def test_theodolite_run_as_the_one_liner(stack: Stack, tmp_path: Path) -> None:
    """``theodolite run DIR -e train.py -P ...`` as ``mlflow run DIR -e train.py -P ...``."""
    project = _project(tmp_path, {"train.py": TRAIN_PY})
    experiment = unique("cli-run")
    env = {
        **os.environ,
        "THEODOLITE_API_URL": stack.config.api_url,
        "THEODOLITE_API_KEY": stack.admin_key,
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "theodolite",
            "run",
            str(project),
            "-e",
            "train.py",
            "-P",
            "alpha=0.125",
            "-P",
            "exit=4",
            "--experiment-name",
            experiment,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # the job failed: exit code 1, as submit --wait
    job = json.loads(done.stdout)
    assert job["status"] == "failed" and job["entry_point"] == "train.py"
    params, metrics = _run_data(stack.config.mlflow_url, job["mlflow_run_id"])
    theirs = through_mlflow(stack, project, "train.py", {"alpha": "0.125", "exit": "4"}, tmp_path)
    assert_same(Outcome(job["status"], params, metrics, job["mlflow_run_id"]), theirs)


@pytest.mark.parametrize("files", [{"README.md": "no code"}, {"notes/MLproject": "name: x\n"}])
def test_an_archive_with_nothing_to_run_is_refused(
    api: httpx.Client, files: dict[str, str]
) -> None:
    response = upload(api, _tar(files))
    assert response.status_code == 422
    assert "no .py or .sh file" in response.text


@dataclass
class SourceRun:
    run_id: str
    experiment_id: str  # the testbed's experiment


@pytest.fixture(scope="module")
def source_run(stack: Stack) -> SourceRun:
    """A testbed job's run that logged ``inputs/data.csv`` (in the administrators' group)."""
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as admin:
        experiment = create_experiment(admin)
        archive = _tar({"write.py": WRITE_PY})
        outcome, _, _ = through_testbed(
            admin, stack, archive, "write.py", {}, experiment_id=experiment["id"]
        )
    assert outcome.status == "succeeded"
    return SourceRun(outcome.run_id, experiment["id"])


@pytest.mark.parametrize("scheme", ["runs", "mlflow-artifacts"])
def test_a_remote_path_is_downloaded_as_mlflow_does(
    api: httpx.Client, stack: Stack, tmp_path: Path, source_run: SourceRun, scheme: str
) -> None:
    """A job reads runs of its own experiment through its proxy (docs/mlproject.md)."""
    run_id = source_run.run_id
    if scheme == "runs":
        uri = f"runs:/{run_id}/inputs/data.csv"
    else:
        root = MlflowClient(stack.config.mlflow_url).get_run(run_id).info.artifact_uri
        assert root.startswith("mlflow-artifacts:/")
        uri = f"{root}/inputs/data.csv"
    files = {"MLproject": READ_MLPROJECT, "read.py": READ_PY}
    params = {"data": uri, "scale": "2"}
    ours, _, job = through_testbed(
        api, stack, _tar(files), "main", params, experiment_id=source_run.experiment_id
    )
    theirs = through_mlflow(stack, _project(tmp_path, files), "main", params, tmp_path)
    log = api.get(f"/jobs/{job['id']}/logs").text
    assert ours.status == "succeeded", log
    assert_same(ours, theirs)
    assert ours.metrics == {"total": 13.0, "absolute": 1.0}
    assert ours.params["data"] == uri  # logged as given, as MLflow does
    assert "inputs/param_0/data.csv" in log


def test_a_models_uri_path_is_downloaded_as_mlflow_does(
    api: httpx.Client, stack: Stack, tmp_path: Path, source_run: SourceRun
) -> None:
    model_job, _, made = through_testbed(
        api,
        stack,
        _tar({"model.py": MODEL_PY}),
        "model.py",
        {},
        experiment_id=source_run.experiment_id,
    )
    assert model_job.status == "succeeded"
    listed = api.get(f"/jobs/{made['id']}/artifacts").json()["data"]
    (uri,) = [a["uri"] for a in listed if a["kind"] == "model"]
    files = {"MLproject": PREDICT_MLPROJECT, "predict.py": PREDICT_PY}
    ours, _, job = through_testbed(
        api, stack, _tar(files), "main", {"model": uri}, experiment_id=source_run.experiment_id
    )
    theirs = through_mlflow(stack, _project(tmp_path, files), "main", {"model": uri}, tmp_path)
    assert ours.status == "succeeded", api.get(f"/jobs/{job['id']}/logs").text
    assert_same(ours, theirs)
    assert ours.metrics == {"prediction": pytest.approx(20.0)}


@pytest.mark.parametrize("scheme", ["runs", "mlflow-artifacts"])
def test_a_run_of_another_experiment_of_the_group_is_downloaded(
    api: httpx.Client, stack: Stack, source_run: SourceRun, scheme: str
) -> None:
    """Experiment A's run, given to a job of experiment B of the same group: submission lets
    the job's proxy read A (the job message's readable_experiments), and the job reads the file."""
    uri = f"runs:/{source_run.run_id}/inputs/data.csv"
    if scheme == "mlflow-artifacts":
        root = MlflowClient(stack.config.mlflow_url).get_run(source_run.run_id).info.artifact_uri
        uri = f"{root}/inputs/data.csv"
    files = {"MLproject": READ_MLPROJECT, "read.py": READ_PY}
    other = create_experiment(api)  # the same group as the source run's
    assert other["id"] != source_run.experiment_id
    ours, _, job = through_testbed(
        api, stack, _tar(files), "main", {"data": uri, "scale": "2"}, experiment_id=other["id"]
    )
    assert ours.status == "succeeded", api.get(f"/jobs/{job['id']}/logs").text
    assert ours.metrics == {"total": 13.0, "absolute": 1.0}  # (1 + 2 + 3.5) * 2: the file read


def test_a_path_outside_the_group_is_refused_at_submission(
    api: httpx.Client, stack: Stack, source_run: SourceRun
) -> None:
    """Another group's run (by runs:/ or its mlflow-artifacts:/ root) and a run that does not
    exist are refused alike, naming the parameter, and no job is created."""
    group, user = unique("outsiders"), unique("olga")
    assert api.post("/admin/groups", json={"name": group}).status_code == 201
    assert api.post("/admin/users", json={"name": user}).status_code == 201
    member = api.put(f"/admin/groups/{group}/members/{user}", json={"role": "member"})
    assert member.status_code == 200, member.text
    made = api.post("/admin/keys", json={"user": user, "name": "compat", "scopes": ["submit"]})
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    root = MlflowClient(stack.config.mlflow_url).get_run(source_run.run_id).info.artifact_uri
    values = [
        f"runs:/{source_run.run_id}/inputs/data.csv",
        f"{root}/inputs/data.csv",
        "runs:/0123456789abcdef0123456789abcdef/inputs/data.csv",  # no such run
    ]
    files = {"MLproject": READ_MLPROJECT, "read.py": READ_PY}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as outsider:
        entrypoint = upload(outsider, _tar(files)).json()
        experiment = create_experiment(outsider)
        for value in values:
            response = outsider.post(
                "/jobs",
                json={
                    "experiment_id": experiment["id"],
                    "entrypoint_id": entrypoint["id"],
                    "params": {"data": value},
                },
            )
            assert response.status_code == 422, response.text
            assert response.json()["problems"] == [
                {"field": "params.data", "message": "not in an experiment of your group"}
            ]
        listed = outsider.get("/jobs", params={"experiment_id": experiment["id"]})
        assert listed.json()["count"] == 0


@pytest.mark.parametrize(
    "value", ["s3://theodolite-mlflow/artifacts/x.csv", "https://example.com/data.csv"]
)
def test_raw_object_store_and_web_paths_are_refused_at_submission(
    api: httpx.Client, value: str
) -> None:
    files = {"MLproject": READ_MLPROJECT, "read.py": READ_PY}
    entrypoint = upload(api, _tar(files)).json()
    experiment = create_experiment(api)
    response = api.post(
        "/jobs",
        json={
            "experiment_id": experiment["id"],
            "entrypoint_id": entrypoint["id"],
            "params": {"data": value},
        },
    )
    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == "params.data"
    assert "not downloaded for jobs" in problem["message"]


def test_an_entry_point_neither_declared_nor_a_file_is_refused(api: httpx.Client) -> None:
    files = {"MLproject": TUTORIAL_MLPROJECT, "train.py": TRAIN_PY}
    entrypoint = upload(api, _tar(files)).json()
    response = api.post(
        "/jobs",
        json={
            "experiment_id": create_experiment(api)["id"],
            "entrypoint_id": entrypoint["id"],
            "entry_point": "missing.py",
        },
    )
    assert response.status_code == 422, response.text
    (problem,) = response.json()["problems"]
    assert problem["field"] == "entry_point"
    assert "(declared: main), and has no such .py or .sh file" in problem["message"]
