"""Fault injection (marker ``faults``): SIGKILL of the CPU worker's whole process group a moment
after a job started, warm (a fork of the pool's forkserver, which sits in a session of its own)
and cold (bwrap). Every process of the job must be gone and nothing written afterwards: a job
that outlived its worker would run beside the retry the api starts (issue 12's chaos run)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.processes import processes_running_as
from tests.fixtures.stack import ARCHIVE_LIMITS
from theodolite.devstack import (
    StackConfig,
    down_isolated,
    isolated_config,
    running_pid,
    start_worker,
    up_isolated,
    worker_name,
)
from theodolite.devstack.processes import log_tail

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

UID_BASE = 160_000  # this stack's sandbox uids: no other test's jobs run as these
TICKER = """\
import os, sys, time
with open("ticks", "a") as out:
    out.write(("warm" if "multiprocessing.forkserver" in sys.modules else "cold") + "\\n")
    while True:
        out.write(f"{time.time()}\\n")
        out.flush()
        time.sleep(0.05)
"""
MLPROJECT = """\
name: ticker
entry_points:
  warm:
    command: "python ticker.py"
  cold:
    command: "python ticker.py && true"
"""
WORKER = worker_name("cpu")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    env = {
        **ARCHIVE_LIMITS,
        "THEODOLITE_WORKER_SANDBOX_UID_BASE": str(UID_BASE),
        "THEODOLITE_WORKER_WARM_POOL_PRELOAD": '["json"]',
    }
    config = isolated_config(tmp_path_factory.mktemp("worker-kill"), env)
    try:
        up_isolated(config)
        yield config
    finally:
        down_isolated(config)


def _warm_pools_started(config: StackConfig) -> int:
    """How often the worker's log says its warm pool got ready (one line per worker start)."""
    log = config.state_dir / "logs" / f"{WORKER}.log"
    return log.read_text(errors="replace").count("warm pool ready") if log.exists() else 0


def _wait_for_warm_pools(config: StackConfig, count: int) -> None:
    deadline = time.monotonic() + 60
    while _warm_pools_started(config) < count:
        assert time.monotonic() < deadline, log_tail(config, WORKER)
        time.sleep(0.2)


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_a_job_dies_with_its_worker_however_the_worker_dies(
    config: StackConfig, start: str
) -> None:
    started = _warm_pools_started(config)
    if running_pid(config, WORKER) is None:
        start_worker(config, "cpu")  # the previous case killed it
        started += 1
    _wait_for_warm_pools(config, max(started, 1))
    with httpx.Client(
        base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=30
    ) as api:
        experiment = api.post("/experiments", json={"name": f"kill-{start}"}).json()
        archive = make_tar({"MLproject": MLPROJECT, "ticker.py": TICKER})
        entrypoint = api.post("/entrypoints", files={"archive": ("t.tar.gz", archive)}).json()
        response = api.post(
            "/jobs",
            json={
                "experiment_id": experiment["id"],
                "entrypoint_id": entrypoint["id"],
                "entry_point": start,
            },
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
    ticks = config.state_dir / WORKER / "jobs" / f"{job_id}-1" / "project" / "ticks"
    deadline = time.monotonic() + 60
    while not ticks.exists() or len(ticks.read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, log_tail(config, WORKER)
        time.sleep(0.02)
    assert ticks.read_text().splitlines()[0] == start
    assert processes_running_as(UID_BASE), "the job runs as its sandbox uid"

    worker = running_pid(config, WORKER)
    assert worker is not None
    os.killpg(worker, signal.SIGKILL)  # the worker leads its own process group

    deadline = time.monotonic() + 5
    while processes_running_as(UID_BASE):
        assert time.monotonic() < deadline, (
            f"job processes outlived the worker: {processes_running_as(UID_BASE)}"
        )
        time.sleep(0.05)
    written = ticks.stat().st_size
    time.sleep(1.5)  # 30 ticks' time
    assert ticks.stat().st_size == written, "the job wrote after its worker died"


PIPELINE_MLPROJECT = """\
name: stages
entry_points:
  main:
    parameters:
      seconds: {type: float, default: 0}
      after: {type: string, default: ""}
    command: "python stage.py {seconds}"
"""
STAGE = "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('stage done')\n"


def test_a_stage_whose_worker_is_killed_retries_and_its_pipeline_completes(
    config: StackConfig,
) -> None:
    if running_pid(config, WORKER) is None:
        start_worker(config, "cpu")  # an earlier case killed it
    with httpx.Client(
        base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=30
    ) as api:
        experiment = api.post("/experiments", json={"name": "kill-pipeline"}).json()
        archive = make_tar({"MLproject": PIPELINE_MLPROJECT, "stage.py": STAGE})
        entrypoint = api.post("/entrypoints", files={"archive": ("s.tar.gz", archive)}).json()
        stage = {"entrypoint_id": entrypoint["id"], "max_retries": 2}
        created = api.post(
            "/pipelines",
            json={
                "experiment_id": experiment["id"],
                "name": "killed",
                "stages": {
                    "long": {**stage, "params": {"seconds": 8}},
                    "next": {**stage, "params": {"after": "${long.run_id}"}},
                },
            },
        )
        assert created.status_code == 202, created.text
        pipeline = created.json()
        long_id = pipeline["stages"][0]["jobs"][0]["job_id"]
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{long_id}").json()["status"] != "running":
            assert time.monotonic() < deadline, log_tail(config, WORKER)
            time.sleep(0.2)
        worker = running_pid(config, WORKER)
        assert worker is not None
        os.killpg(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while running_pid(config, WORKER) is not None:  # gone, or a "restart" finds it alive
            assert time.monotonic() < deadline, "the killed worker is still running"
            time.sleep(0.05)
        start_worker(config, "cpu")
        deadline = time.monotonic() + 240
        while (now := api.get(f"/pipelines/{pipeline['id']}").json())["status"] == "running":
            if time.monotonic() > deadline:
                print(now, api.get(f"/jobs/{long_id}").json(), sep="\n")  # noqa: T201
                print(log_tail(config, WORKER, 80), log_tail(config, "api", 80), sep="\n")  # noqa: T201
                raise AssertionError("the pipeline did not end")
            time.sleep(0.5)
        assert now["status"] == "succeeded", now
        long = api.get(f"/jobs/{long_id}").json()
        assert long["attempt"] == 2, long  # the first attempt died with its worker
        statuses = [step["status"] for step in long["history"]]
        assert statuses[-1] == "succeeded" and ("lost" in statuses or statuses.count("queued") > 1)
        following = api.get(f"/jobs/{now['stages'][1]['jobs'][0]['job_id']}").json()
        assert following["params"]["after"] == long["mlflow_run_id"]  # the retry's run
