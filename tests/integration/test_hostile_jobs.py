"""Hostile jobs against the real stack: each job runs in its sandbox, started warm (the pool's
fork) and cold (bwrap), on a queue of its own whose worker has small limits.

What a hostile user tried (issue 12): print the environment, reach the stack's services, write
the caches and site-packages, read another job's folder and the api's environment, leave a
``setsid`` daemon, exhaust processes, memory, disk and CPU. Each is refused or ends the job
``failed`` with its reason, and the next job runs. (Tagging another job's MLflow run is the
tracking proxy's test: tests/integration/test_tracking_proxy.py.)
"""

from __future__ import annotations

import json
import os
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.processes import processes_running_as
from tests.fixtures.stack import Stack
from tests.integration.helpers import create_experiment, submit, upload_ok, wait_for_end
from theodolite.devstack import running_pid, start_worker, stop_process, worker_name
from theodolite.devstack.processes import log_tail
from theodolite.devstack.services import worker_env

UID_BASE = 150_000  # the hostile worker's sandbox uids (one slot)
LIMITS = {
    "memory_bytes": "192 MiB",
    "processes": 48,
    "cpu_seconds": 3,
    "open_files": 256,
    "file_size_bytes": "32 MiB",
    "disk_bytes": "48 MiB",
}

HOSTILE = r"""
import json, os, socket, subprocess, sys, time

print("started", "warm" if "multiprocessing.forkserver" in sys.modules else "cold", flush=True)
kind, targets = sys.argv[1], " ".join(sys.argv[2:]).split()  # one quoted parameter
if kind == "environment":
    for name, value in sorted(os.environ.items()):
        print(f"ENV {name}={value}")
elif kind == "connect":
    for port in targets:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
            print(f"REACHED {port}")
        except OSError as exc:
            print(f"REFUSED {port} {exc}")
elif kind == "write":
    for path in targets:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as out:
                out.write("poison")
            print(f"WROTE {path}")
        except OSError as exc:
            print(f"REFUSED {path} {exc}")
elif kind == "read":
    for path in targets:
        try:
            with open(path, "rb") as source:
                source.read()
            print(f"READ {path}")
        except OSError as exc:
            print(f"REFUSED {path} {exc}")
elif kind == "daemon":
    subprocess.Popen(
        ["setsid", "sh", "-c", "while true; do sleep 0.1; done"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
elif kind == "fork_bomb":
    while True:
        try:
            os.fork()
        except OSError:
            pass
elif kind == "memory_hog":
    hog = []
    while True:
        hog.append(bytearray(8 * 1024 * 1024))
elif kind == "disk_filler":
    index = 0
    while True:
        with open(f"filler-{index}", "wb") as out:
            out.write(os.urandom(1024 * 1024))
        index += 1
elif kind == "cpu_loop":
    while True:
        pass
elif kind == "sleep":
    time.sleep(float(targets[0]))
print("done", kind)
"""
MLPROJECT = """\
name: hostile
entry_points:
  warm:
    parameters: {kind: string, targets: {type: string, default: ""}}
    command: "python hostile.py {kind} {targets}"
  cold:
    parameters: {kind: string, targets: {type: string, default: ""}}
    command: "python hostile.py {kind} {targets} && true"
"""
STARTS = ["warm", "cold"]


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def hostile_queue(stack: Stack, admin: httpx.Client) -> Iterator[str]:
    """A queue whose worker holds each job to small limits, its warm pool ready."""
    name = f"hostile-{os.urandom(3).hex()}"
    assert admin.post("/queues", json={"name": name}).status_code == 201
    env = {
        "THEODOLITE_WORKER_JOB_LIMITS": json.dumps(LIMITS),
        "THEODOLITE_WORKER_SANDBOX_UID_BASE": str(UID_BASE),
        "THEODOLITE_WORKER_LIMITS_POLL_INTERVAL_S": "0.2",
        "THEODOLITE_WORKER_DISK_POLL_INTERVAL_S": "0.2",
        "THEODOLITE_WORKER_WARM_POOL_PRELOAD": '["json"]',
    }
    start_worker(stack.config, name, env=env)
    deadline = time.monotonic() + 60
    while "warm pool ready" not in log_tail(stack.config, worker_name(name), 200):
        assert time.monotonic() < deadline, log_tail(stack.config, worker_name(name))
        time.sleep(0.2)
    try:
        yield name
    finally:
        stop_process(stack.config, worker_name(name))
        admin.delete(f"/queues/{name}")


@pytest.fixture(scope="module")
def target(admin: httpx.Client) -> dict[str, str]:
    experiment = create_experiment(admin)
    entrypoint = upload_ok(admin, make_tar({"MLproject": MLPROJECT, "hostile.py": HOSTILE}))
    return {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}


def _run(
    api: httpx.Client, target: dict[str, str], queue: str, start: str, kind: str, *targets: Any
) -> dict[str, Any]:
    params = {"kind": kind, "targets": " ".join(str(t) for t in targets)}
    response = submit(api, **target, queue=queue, entry_point=start, params=params)
    assert response.status_code == 202, response.text
    job = wait_for_end(api, response.json()["id"], timeout_s=120)
    job["log"] = api.get(f"/jobs/{job['id']}/logs").text
    assert f"started {start}" in job["log"], (job["error"], job["log"])  # warm or cold, as asked
    return job


def _no_sandbox_process_within(seconds: float) -> None:
    # The kernel's SIGKILLs land a moment after the job's end was reported.
    deadline = time.monotonic() + seconds
    while processes_running_as(UID_BASE):
        assert time.monotonic() < deadline, f"left running: {processes_running_as(UID_BASE)}"
        time.sleep(0.1)


@pytest.mark.parametrize("start", STARTS)
def test_a_job_sees_no_secret_in_its_environment(
    stack: Stack, api: httpx.Client, target: dict[str, str], hostile_queue: str, start: str
) -> None:
    job = _run(api, target, hostile_queue, start, "environment")
    assert job["status"] == "succeeded", (job["error"], job["log"])
    config = stack.config
    worker_id = worker_env(config, hostile_queue, worker_name(hostile_queue))[
        "THEODOLITE_WORKER_WORKER_ID"
    ]
    secrets = {
        "broker URL": config.broker_url,
        "broker password": config.broker_url.split(":")[2].split("@")[0],
        "S3 secret key": config.s3_secret_key,
        "database URL": config.database_url("asyncpg", config.database),
        "worker secret": config.worker_secret(),
        "worker token": config.worker_token(worker_id),
        "administrator key": stack.admin_key,
    }
    leaked = [what for what, value in secrets.items() if value in job["log"]]
    assert leaked == [], job["log"]
    names = {line[4:].split("=")[0] for line in job["log"].splitlines() if line.startswith("ENV ")}
    assert "MLFLOW_RUN_ID" in names and "THEODOLITE_JOB_ID" in names
    assert not {n for n in names if n.startswith(("THEODOLITE_S3", "THEODOLITE_DB", "AWS_"))}
    assert not {"THEODOLITE_BROKER_URL", "THEODOLITE_WORKER_TOKEN"} & names


@pytest.mark.parametrize("start", STARTS)
def test_the_stacks_services_are_out_of_reach(
    stack: Stack, api: httpx.Client, target: dict[str, str], hostile_queue: str, start: str
) -> None:
    config = stack.config
    ports = [5432, 5672, config.s3_port, config.api_internal_port, config.api_port]
    job = _run(api, target, hostile_queue, start, "connect", *ports)
    assert job["status"] == "succeeded", (job["error"], job["log"])
    for port in ports:
        assert f"REFUSED {port}" in job["log"], job["log"]
    assert "REACHED" not in job["log"]


@pytest.mark.parametrize("start", STARTS)
def test_caches_site_packages_and_other_folders_are_refused(
    stack: Stack, api: httpx.Client, target: dict[str, str], hostile_queue: str, start: str
) -> None:
    config = stack.config
    work_dir = (config.state_dir / worker_name(hostile_queue)).resolve()
    # Another job, running on the stack's own worker meanwhile, with its folder in that worker's.
    other = submit(api, **target, entry_point="warm", params={"kind": "sleep", "targets": "30"})
    assert other.status_code == 202
    other_id = other.json()["id"]
    other_dir = (config.state_dir / worker_name("cpu") / "jobs" / f"{other_id}-1").resolve()
    deadline = time.monotonic() + 60
    while not (other_dir / "project" / "hostile.py").exists():
        assert time.monotonic() < deadline, "the other job did not start"
        time.sleep(0.2)
    writes = [
        work_dir / "archives" / "poisoned",
        work_dir / "plugins" / "poisoned" / "__init__.py",
        Path(sysconfig.get_paths()["purelib"]) / "poisoned.py",
        other_dir / "project" / "hostile.py",
    ]
    api_pid = running_pid(config, "api")
    reads = [
        other_dir / "project" / "hostile.py",
        Path(f"/proc/{api_pid}/environ"),
        Path("/etc/shadow"),
    ]
    try:
        wrote = _run(api, target, hostile_queue, start, "write", *writes)
        read = _run(api, target, hostile_queue, start, "read", *reads)
    finally:
        api.post(f"/jobs/{other_id}/cancel")
    assert wrote["status"] == read["status"] == "succeeded", (wrote, read)
    for path in writes:
        assert f"REFUSED {path}" in wrote["log"], wrote["log"]
    for path in reads:
        assert f"REFUSED {path}" in read["log"], read["log"]
    assert "WROTE" not in wrote["log"] and "READ " not in read["log"]
    assert not (Path(sysconfig.get_paths()["purelib"]) / "poisoned.py").exists()


@pytest.mark.parametrize("start", STARTS)
def test_a_setsid_daemon_is_gone_when_its_job_ends(
    api: httpx.Client, target: dict[str, str], hostile_queue: str, start: str
) -> None:
    job = _run(api, target, hostile_queue, start, "daemon")
    assert job["status"] == "succeeded", (job["error"], job["log"])
    _no_sandbox_process_within(5)


BREACHES = {
    "fork_bomb": "process limit 48 reached",
    "memory_hog": "memory limit 192 MiB exceeded",
    "disk_filler": "disk limit 48 MiB exceeded (the job's folder)",
    "cpu_loop": "CPU time limit 3 s exceeded",
}


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("kind", sorted(BREACHES))
def test_a_job_past_a_limit_fails_with_its_reason_and_the_next_job_runs(
    api: httpx.Client, target: dict[str, str], hostile_queue: str, start: str, kind: str
) -> None:
    job = _run(api, target, hostile_queue, start, kind)
    assert (job["status"], job["error"]) == ("failed", BREACHES[kind]), (job["error"], job["log"])
    _no_sandbox_process_within(5)
    after = _run(api, target, hostile_queue, start, "environment")
    assert after["status"] == "succeeded", after
