"""MLproject environments through the HTTP API, each case beside ``mlflow run`` where MLflow can
run it: a python_env built with uv (and reused), a Python the worker lacks, conda and docker.

MLflow builds a conda_env with a conda or mamba program, which this machine lacks (neither is on
PyPI): the conda cases run on a queue whose worker builds with py-rattler from a channel made
here, and have no ``mlflow run`` beside them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.archives import make_tar
from tests.fixtures.conda_channel import tiny_channel
from tests.fixtures.stack import Stack, queue_with_worker
from tests.integration.helpers import job_target, submit, unique, wait_for_end, wait_until

# Logs what it ran with through MLflow's REST API: the declared environment holds no mlflow.
LOGGING_SCRIPT = '''"""Logs which six and which Python it got."""

import json
import os
import sys
import urllib.request

expected = sys.argv[1]
try:
    import six

    version = six.__version__
except ImportError:
    version = "none"
python = f"{sys.version_info[0]}.{sys.version_info[1]}"
print(f"six {version} on Python {python}")
try:
    open(os.path.join(sys.prefix, "written-by-the-job"), "w").close()
    print(f"environment {sys.prefix} writable")
except OSError as exc:
    print(f"environment {sys.prefix} not writable: {exc.strerror}")


def call(path, body):
    uri = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).read()


run_id = os.environ["MLFLOW_RUN_ID"]
call("runs/log-parameter", {"run_id": run_id, "key": "six_version", "value": version})
call("runs/log-parameter", {"run_id": run_id, "key": "python", "value": python})
matches = float(expected in ("any", version))
call("runs/log-metric", {"run_id": run_id, "key": "six_matches", "value": matches, "timestamp": 0})
sys.exit(0 if matches else 1)
'''
MAIN = """entry_points:
  main:
    parameters:
      expected: {type: string, default: "any"}
    command: "python check.py {expected}"
"""


def archive_of(files: dict[str, str]) -> bytes:
    contents: dict[str, bytes | str] = dict(files)
    return make_tar(contents)


def project(environment: str, files: dict[str, str]) -> dict[str, str]:
    return {"MLproject": f"name: envs\n{environment}\n{MAIN}", "check.py": LOGGING_SCRIPT, **files}


PINNED_SIX = project(
    "python_env: python_env.yaml",
    {
        "python_env.yaml": (
            "python: '3.11'\nbuild_dependencies:\n  - pip\ndependencies:\n  - six==1.15.0\n"
            # Unique per test run: the first job builds, the second reuses.
            f"# {unique('build')}\n"
        )
    },
)
PYTHON_39 = project(
    "python_env: python_env.yaml",
    {"python_env.yaml": "python: '3.9'\ndependencies:\n  - six==1.15.0\n"},
)
CONDA = project("conda_env: conda.yaml", {"conda.yaml": "dependencies:\n  - python=3.11\n"})
DOCKER = project("docker_env:\n  image: python:3.11-slim", {})


def mlflow_run(
    stack: Stack, files: dict[str, str], tmp_path: Path, env_manager: str, **params: str
) -> tuple[str, dict[str, Any] | None]:
    """``mlflow run DIR --env-manager ...`` against the stack's MLflow: its status and its run's
    params and metrics (None when it made no run)."""
    directory = tmp_path / unique("project")
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    tracking = f"http://127.0.0.1:{stack.config.mlflow_port}"
    experiment = unique("mlflow-run")
    argv = [sys.executable, "-m", "mlflow", "run", str(directory), "--env-manager", env_manager]
    argv += ["--experiment-name", experiment]
    for name, value in params.items():
        argv += ["-P", f"{name}={value}"]
    # As a user's shell would have it: this interpreter's folder first on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        argv,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )
    client = MlflowClient(tracking_uri=tracking)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id])
    assert len(runs) <= 1, runs
    status = "succeeded" if done.returncode == 0 else "failed"
    return status, _run_data(runs[0]) if runs else None


def _run_data(run: Any) -> dict[str, Any]:
    params = {k: v for k, v in run.data.params.items() if k in ("six_version", "python")}
    return {"params": params, "metrics": dict(run.data.metrics)}


def run_of_job(stack: Stack, job: dict[str, Any]) -> dict[str, Any]:
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{stack.config.mlflow_port}")
    return _run_data(client.get_run(job["mlflow_run_id"]))


def logs(api: httpx.Client, job: dict[str, Any]) -> str:
    return api.get(f"/jobs/{job['id']}/logs").text


def test_python_env_is_built_with_its_pinned_six_then_reused(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    target = job_target(api, archive_of(PINNED_SIX))
    declared = api.get(f"/entrypoints/{target['entrypoint_id']}").json()["environment"]
    assert declared["kind"] == "python"
    assert (declared["setting"], declared["file"]) == ("python_env", "python_env.yaml")
    assert declared["python"] == "3.11" and declared["dependencies"] == ["six==1.15.0"]
    assert re.fullmatch(r"[0-9a-f]{64}", declared["sha256"])
    (cpu,) = [q for q in api.get("/queues").json()["data"] if q["name"] == "cpu"]
    assert "python" in cpu["environments"]["kinds"]
    assert "uv" in cpu["environments"]["env_managers"]
    assert any(v.startswith("3.11.") for v in cpu["environments"]["pythons"])

    started = time.monotonic()
    first = wait_for_end(api, submit(api, **target, params={"expected": "1.15.0"}).json()["id"])
    first_s = time.monotonic() - started
    assert first["status"] == "succeeded", (first, logs(api, first))
    first_log = logs(api, first)
    assert "six 1.15.0 on Python 3.11" in first_log
    built = re.search(r"environment [0-9a-f]{12} built in ([0-9.]+) s", first_log)
    assert built is not None, first_log
    assert "a cold start" in first_log
    # The environment is mounted read-only in the job's sandbox.
    assert re.search(r"environment \S+ not writable", first_log), first_log
    assert "installing dependencies" in (first["progress"] or {}).get("message", ""), first

    started = time.monotonic()
    second = wait_for_end(api, submit(api, **target, params={"expected": "1.15.0"}).json()["id"])
    second_s = time.monotonic() - started
    assert second["status"] == "succeeded", second
    reused = re.search(r"reused from the cache in ([0-9.]+) s", logs(api, second))
    assert reused is not None, logs(api, second)
    print(
        f"environment cache: first build {built.group(1)} s (job {first_s:.1f} s end to end), "
        f"reuse {reused.group(1)} s (job {second_s:.1f} s end to end)"
    )
    ours = run_of_job(stack, first)
    assert ours == {"params": {"six_version": "1.15.0", "python": "3.11"},
                    "metrics": {"six_matches": 1.0}}  # fmt: skip
    assert run_of_job(stack, second) == ours

    # MLflow's own uv env manager, on the same project: the same status, params and metrics.
    status, theirs = mlflow_run(stack, PINNED_SIX, tmp_path, "uv", expected="1.15.0")
    assert (status, theirs) == ("succeeded", ours)


def test_a_python_the_worker_lacks_is_refused_unless_local(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    target = job_target(api, archive_of(PYTHON_39))
    refused = submit(api, **target, params={})
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["problems"]
    assert problem["field"] == "MLproject.python_env"
    assert "asks for Python 3.9" in problem["message"] and "3.11" in problem["message"]
    assert "env_manager local" in problem["message"]
    listed = api.get("/jobs", params={"experiment_id": target["experiment_id"]}).json()
    assert listed["count"] == 0

    job = wait_for_end(api, submit(api, **target, params={}, env_manager="local").json()["id"])
    assert job["status"] == "succeeded", job
    assert job["env_manager"] == "local"
    assert "the declared python_env was bypassed" in logs(api, job)
    ours = run_of_job(stack, job)
    assert ours["params"]["python"] == "3.11"
    status, theirs = mlflow_run(stack, PYTHON_39, tmp_path, "local")
    assert (status, theirs) == ("succeeded", ours)


def test_conda_env_is_refused_naming_what_the_queue_offers(api: httpx.Client) -> None:
    target = job_target(api, archive_of(CONDA))
    declared = api.get(f"/entrypoints/{target['entrypoint_id']}").json()["environment"]
    assert (declared["kind"], declared["file"]) == ("conda", "conda.yaml")
    for env_manager in (None, "conda"):
        refused = submit(api, **target, params={}, env_manager=env_manager)
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["problems"]
        assert "conda_env" in problem["message"]
        assert "no conda or micromamba" in problem["message"]
        assert "python_env (uv" in problem["message"]
    refused = submit(api, **target, params={}, env_manager="uv")
    assert refused.status_code == 422
    assert "uv builds python_env" in refused.json()["problems"][0]["message"]


def test_docker_env_is_refused_unless_local(api: httpx.Client) -> None:
    target = job_target(api, archive_of(DOCKER))
    declared = api.get(f"/entrypoints/{target['entrypoint_id']}").json()["environment"]
    assert (declared["kind"], declared["image"]) == ("docker", "python:3.11-slim")
    refused = submit(api, **target, params={})
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["problems"]
    assert problem["field"] == "MLproject.docker_env"
    assert "not set up for docker environments" in problem["message"]
    job = wait_for_end(api, submit(api, **target, params={}, env_manager="local").json()["id"])
    assert job["status"] == "succeeded", job
    assert "the declared docker_env was bypassed" in logs(api, job)


def test_a_failed_build_fails_the_job_with_what_uv_said(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    files = project(
        "python_env: python_env.yaml",
        {"python_env.yaml": "python: '3.11'\ndependencies:\n  - six==0.0.0.999\n"},
    )
    target = job_target(api, archive_of(files))
    job = wait_for_end(api, submit(api, **target, params={}).json()["id"])
    assert job["status"] == "failed", job
    assert "installing dependencies: six==0.0.0.999 failed (uv exited with" in job["error"]
    assert "six==0.0.0.999" in job["error"].split("failed (uv exited with", 1)[1]
    assert "six==0.0.0.999" in logs(api, job)
    status, _ = mlflow_run(stack, files, tmp_path, "uv")
    assert status == job["status"]


# What a job of the conda queue checks: the package's program on PATH, its file in CONDA_PREFIX,
# and that it cannot change the shared environment.
CONDA_SCRIPT = """import os, subprocess, sys

prefix = os.environ["CONDA_PREFIX"]
said = subprocess.run(["tinypkg-hello"], capture_output=True, text=True, check=True).stdout
print(f"tinypkg-hello said: {said.strip()}")
with open(os.path.join(prefix, "share", "tinypkg", "data.txt")) as data:
    print(f"data: {data.read().strip()}")
try:
    open(os.path.join(prefix, "written-by-the-job"), "w").close()
    print(f"environment {prefix} writable")
except OSError as exc:
    print(f"environment {prefix} not writable: {exc.strerror}")
sys.exit(0 if said == "tinypkg 1.0 says hello\\n" else 1)
"""
CONDA_UID_BASE = 190_000  # the conda worker's sandbox uids


def conda_project(conda_yaml: str) -> bytes:
    mlproject = "name: tiny\nconda_env: conda.yaml\n"
    mlproject += 'entry_points:\n  main:\n    command: "python check.py"\n'
    return archive_of({"MLproject": mlproject, "check.py": CONDA_SCRIPT, "conda.yaml": conda_yaml})


@pytest.fixture(scope="module")
def conda_queue(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A queue whose worker builds conda_env with py-rattler from a local channel holding
    ``tinypkg 1.0`` (THEODOLITE_WORKER_CONDA_CHANNELS), its heartbeat announcing conda."""
    import rattler  # noqa: F401  (the worker's extra conda, installed by make install: no skip)

    channel = f"file://{tiny_channel(tmp_path_factory.mktemp('conda-channel'))}"
    env = {
        "THEODOLITE_WORKER_CONDA_CHANNELS": json.dumps([channel]),
        "THEODOLITE_WORKER_SANDBOX_UID_BASE": str(CONDA_UID_BASE),
        "THEODOLITE_WORKER_WARM_POOL_PRELOAD": '["json"]',
    }
    with queue_with_worker(stack, "conda", env) as name:
        yield name


def queue_environments(api: httpx.Client, name: str) -> dict[str, Any]:
    (queue,) = [q for q in api.get("/queues").json()["data"] if q["name"] == name]
    return dict(queue["environments"] or {})


def test_conda_env_is_built_with_py_rattler_from_the_operators_channel_then_reused(
    api: httpx.Client, conda_queue: str
) -> None:
    wait_until(lambda: "conda" in queue_environments(api, conda_queue).get("kinds", []), 30)
    offered = queue_environments(api, conda_queue)
    assert offered["conda"].startswith("py-rattler "), offered
    # The file's own channel is a name the worker never asks: the operator's channel replaces it.
    target = job_target(
        api,
        conda_project(
            f"channels: [conda-forge]\ndependencies:\n  - tinypkg=1.0\n# {unique('c')}\n"
        ),
    )
    first = wait_for_end(api, submit(api, **target, queue=conda_queue, params={}).json()["id"])
    first_log = logs(api, first)
    assert first["status"] == "succeeded", (first, first_log)
    assert "tinypkg-hello said: tinypkg 1.0 says hello" in first_log
    assert "data: tinypkg data 1.0" in first_log
    built = re.search(
        r"conda_env conda.yaml: environment [0-9a-f]{12} built in ([0-9.]+) s", first_log
    )
    assert built is not None, first_log
    assert "with py-rattler" in first_log and "a cold start" in first_log
    assert re.search(r"environment \S+ not writable", first_log), first_log
    assert "creating the environment: tinypkg=1.0" in (first["progress"] or {}).get("message", "")

    second = wait_for_end(api, submit(api, **target, queue=conda_queue, params={}).json()["id"])
    reused = re.search(r"reused from the cache in ([0-9.]+) s", logs(api, second))
    assert second["status"] == "succeeded" and reused is not None, logs(api, second)
    print(f"conda environment cache: first build {built.group(1)} s, reuse {reused.group(1)} s")

    # The stack's own cpu queue has no conda: refused there at submission, as before.
    refused = submit(api, **target, params={})
    assert refused.status_code == 422, refused.text
    assert "no conda or micromamba" in refused.json()["problems"][0]["message"]


def test_a_failed_conda_build_fails_the_job_with_what_the_solver_said(
    api: httpx.Client, conda_queue: str
) -> None:
    wait_until(lambda: "conda" in queue_environments(api, conda_queue).get("kinds", []), 30)
    target = job_target(api, conda_project("dependencies:\n  - nosuchpkg=2.0\n"))
    job = wait_for_end(api, submit(api, **target, queue=conda_queue, params={}).json()["id"])
    assert job["status"] == "failed", job
    assert "creating the environment: nosuchpkg=2.0" in job["error"], job["error"]
    assert "No candidates were found for nosuchpkg" in job["error"], job["error"]
