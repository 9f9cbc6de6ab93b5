"""Fault injection (marker ``faults``): a stream of short jobs while the broker restarts twice,
a worker is SIGKILLed three times and the api restarts once, against a RabbitMQ node of its
own. Then every job must have exactly one terminal state, none lost, no two attempts of one job
running at once; dead letters are counted with their reasons. The figures are printed."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.processes import processes_running_as
from tests.fixtures.rabbit_node import RabbitNode
from tests.fixtures.stack import ARCHIVE_LIMITS
from theodolite.devstack import (
    down,
    drop_database,
    free_ports,
    isolated_config,
    running_pid,
    start_api,
    start_worker,
    stop_process,
    up,
    worker_name,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

JOBS = 300
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}

# Each attempt journals in its own folder (a sandboxed job writes nowhere else); the worker
# keeps the folders, and the test reads them all at the end.
JOURNALED = """\
import os, sys, time
journal, job = "journal.txt", os.environ["THEODOLITE_JOB_ID"]
attempt = os.environ.get("MLFLOW_RUN_ID", "")
with open(journal, "a") as out:
    out.write(f"start {job} {attempt} {time.time()}\\n")
time.sleep(float(sys.argv[1]))
with open(journal, "a") as out:
    out.write(f"end {job} {attempt} {time.time()}\\n")
"""
UID_BASE = 170_000  # this stack's sandbox uids
MLPROJECT = """\
name: journaled
entry_points:
  main:
    parameters:
      seconds: {type: float, default: 0.3}
    command: "python journaled.py {seconds}"
"""


def _post(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    """While the api restarts, try again (the Idempotency-Key keeps a retried job single)."""
    for _ in range(120):
        try:
            response = client.post(path, **kwargs)
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    raise AssertionError(f"POST {path} kept failing")


def _get(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    for _ in range(120):
        try:
            response = client.get(path, **kwargs)
            if response.status_code != 503:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"GET {path} kept failing")


KILLS: list[float] = []


def _kill_worker(config: Any, index: int) -> None:
    name = worker_name("cpu", index)
    pid = running_pid(config, name)
    assert pid is not None
    KILLS.append(time.time())
    os.kill(pid, signal.SIGKILL)
    stop_process(config, name)
    start_worker(config, "cpu", index, wait=False)


def test_jobs_survive_broker_restarts_killed_workers_and_an_api_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("faults")
    ports = free_ports(2)
    node = RabbitNode(
        name=f"theodolite-faults-{secrets.token_hex(3)}@localhost",
        port=ports[0],
        dist_port=ports[1],
        # Its own folder under /tmp: the node runs as user rabbitmq, which cannot enter pytest's.
        base=Path(tempfile.mkdtemp(prefix="theodolite-rabbit-")),
    )
    node.start()
    config = isolated_config(
        base / "stack",
        {
            **ARCHIVE_LIMITS,
            "THEODOLITE_WORKER_SHUTDOWN_GRACE_S": "5",
            "THEODOLITE_WORKER_KEEP_JOB_DIRS": "true",
            "THEODOLITE_WORKER_SANDBOX_UID_BASE": str(UID_BASE),
        },
    )
    config.broker_url = node.url
    clients = contextlib.ExitStack()
    try:
        up(config, say=lambda line: None)
        start_worker(config, "cpu", 1)
        api = clients.enter_context(
            httpx.Client(
                base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=30
            )
        )
        experiment = _post(api, "/experiments", json={"name": "faults"}).json()
        entrypoint = _post(
            api,
            "/entrypoints",
            files={
                "archive": (
                    "j.tar.gz",
                    make_tar({"MLproject": MLPROJECT, "journaled.py": JOURNALED}),
                )
            },
        ).json()
        submitted: list[str] = []

        def submit_all() -> None:
            for index in range(JOBS):
                body = {
                    "experiment_id": experiment["id"],
                    "entrypoint_id": entrypoint["id"],
                    "params": {"seconds": 0.2},
                    "max_retries": 8,
                    "retry_backoff_s": 0.5,
                }
                response = _post(
                    api, "/jobs", json=body, headers={"Idempotency-Key": f"faults-{index}"}
                )
                assert response.status_code == 202, response.text
                submitted.append(response.json()["id"])
                time.sleep(0.1)

        submitter = threading.Thread(target=submit_all)
        submitter.start()
        faults = [
            (4, lambda: node.restart()),
            (9, lambda: _kill_worker(config, 0)),
            (15, lambda: node.restart()),
            (20, lambda: _kill_worker(config, 1)),
            (25, lambda: (stop_process(config, "api"), start_api(config))),
            (30, lambda: _kill_worker(config, 0)),
        ]
        started = time.monotonic()
        for at, fault in faults:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            fault()
        submitter.join()

        deadline = time.monotonic() + 600
        jobs: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for job_id in submitted:
                if jobs.get(job_id, {}).get("status") not in TERMINAL:
                    jobs[job_id] = _get(api, f"/jobs/{job_id}").json()
            if all(j["status"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(2)

        terminal_counts = {
            job_id: sum(1 for h in job["history"] if h["status"] in TERMINAL)
            for job_id, job in jobs.items()
        }
        runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
        opened: dict[tuple[str, str], float] = {}
        journals = sorted((base / "stack").glob("worker-cpu-*/jobs/*/project/journal.txt"))
        for line in (line for path in journals for line in path.read_text().splitlines()):
            kind, job_id, run, when = line.split()
            if kind == "start":
                opened[(job_id, run)] = float(when)
            elif (job_id, run) in opened:
                runs[job_id].append((opened.pop((job_id, run)), float(when)))
        for key, start in opened.items():
            # Never ended: its worker was killed under it, and it ran until that kill.
            ended = min((k for k in KILLS if k >= start), default=float("inf"))
            runs[key[0]].append((start, ended))
        # Every job is over: a process still running as a sandbox uid outlived its worker.
        survivors = len(processes_running_as(UID_BASE))
        overlapping = sum(
            1
            for intervals in runs.values()
            for i, (a_start, a_end) in enumerate(sorted(intervals))
            for b_start, _ in sorted(intervals)[i + 1 :]
            if b_start < a_end
        )
        queue = _get(api, "/queues/cpu").json()
        report = {
            "jobs_submitted": len(submitted),
            "jobs_with_exactly_one_terminal_state": sum(
                1 for c in terminal_counts.values() if c == 1
            ),
            "jobs_succeeded": sum(1 for j in jobs.values() if j["status"] == "succeeded"),
            "jobs_lost": sum(
                1
                for j in jobs.values()
                if j["status"] not in TERMINAL or "lost" in (j["error"] or "")
            ),
            "jobs_with_more_than_one_attempt": sum(1 for j in jobs.values() if j["attempt"] > 1),
            "attempts_running_at_once": overlapping,
            "job_processes_outliving_their_worker": survivors,
            "dead_letters": queue["dead_letters"],
            "dead_letter_reasons": sorted({d["reason"] for d in queue["recent_dead_letters"]}),
        }
        print("\nFAULT INJECTION", json.dumps(report, indent=2))
        assert report["jobs_submitted"] == JOBS
        assert report["jobs_with_exactly_one_terminal_state"] == JOBS
        assert report["jobs_succeeded"] == JOBS
        assert report["jobs_lost"] == 0
        assert report["attempts_running_at_once"] == 0
        assert report["job_processes_outliving_their_worker"] == 0
    finally:
        clients.close()
        down(config, say=lambda line: None)
        for name in (config.database, config.mlflow_database, config.prefect_database):
            drop_database(config, name)
        node.remove()
