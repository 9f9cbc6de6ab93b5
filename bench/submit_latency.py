"""Submit -> running and submit -> terminal latency of a trivial entry point, against running
the same script directly and against Celery on the same broker (peer_celery.py, in the same run),
with the ratios issue 16 sets as goals. Prints JSON. Not part of the tests.

    .venv/bin/python bench/submit_latency.py --jobs 200
    .venv/bin/python bench/submit_latency.py --jobs 100 --profile /tmp/prof   # py-spy, as root

Starts its own private stack (free ports, own databases and RabbitMQ vhost) and removes it.
Latencies come from the job's recorded transitions (server-side timestamps), so polling does
not blur them. Jobs run one after another (no queueing), then a burst measures throughput with
one worker of ``--slots`` slots. ``--profile DIR`` records the api and the worker (with its job
processes) with py-spy (raw, collapsed stacks) while the jobs run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import peer_celery
from stats import percentiles

from theodolite.client import TheodoliteClient
from theodolite.devstack import (
    down_isolated,
    isolated_config,
    running_pid,
    up_isolated,
    worker_name,
)
from theodolite.devstack.config import StackConfig

TRIVIAL = Path(__file__).parent / "trivial"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
# Issue 16's goals: upper bounds in ms, as ratios (testbed p50 / baseline p50), and the burst.
GOALS_MS = {"submit_to_running_p99": 50.0, "submit_to_terminal_p99": 250.0}
GOAL_RATIOS = {
    "submit_to_running_p50_vs_celery_start": 3.0,
    "submit_to_terminal_p50_vs_direct": 3.0,
}
GOAL_BURST_JOBS_PER_S = 15.0


def at(job: dict, status: str) -> datetime:
    return next(datetime.fromisoformat(h["at"]) for h in job["history"] if h["status"] == status)


def wait_terminal(http: httpx.Client, job_id: str) -> dict:
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.01)


def direct_runs(count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "trivial.py", str(i)], cwd=TRIVIAL, check=True, capture_output=True
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


def start_profiles(config: StackConfig, folder: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on the api and on the worker with its job processes, until terminated."""
    folder.mkdir(parents=True, exist_ok=True)
    recorders = []
    for name in ("api", worker_name("cpu")):
        pid = running_pid(config, name)
        if pid is None:
            raise SystemExit(f"no running {name} to profile")
        recorders.append(
            subprocess.Popen(
                [
                    *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)),
                    *("--format", "raw", "--rate", "250", "--subprocesses", "--nonblocking"),
                    *("-o", str(folder / f"{name}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1)  # py-spy attached
    return recorders


def stop_profiles(recorders: list[subprocess.Popen[bytes]]) -> None:
    for recorder in recorders:
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
    for recorder in recorders:
        recorder.wait(timeout=60)


def verdicts(report: dict) -> dict[str, dict[str, float | bool]]:
    """Each goal of issue 16: the measured value (ms, ratio or jobs/s), its bound, met or not."""
    measured = {
        "submit_to_running_p99": report["submit_to_running_ms"]["p99"],
        "submit_to_terminal_p99": report["submit_to_terminal_ms"]["p99"],
        "submit_to_running_p50_vs_celery_start": report["ratios"]["running_p50_vs_celery_start"],
        "submit_to_terminal_p50_vs_direct": report["ratios"]["terminal_p50_vs_direct"],
    }
    bounds = {**GOALS_MS, **GOAL_RATIOS}
    out: dict[str, dict[str, float | bool]] = {
        name: {"value": value, "goal_at_most": bounds[name], "met": value <= bounds[name]}
        for name, value in measured.items()
    }
    burst = report["burst"]["jobs_per_s"]
    out["burst_jobs_per_s"] = {
        "value": burst,
        "goal_at_least": GOAL_BURST_JOBS_PER_S,
        "met": burst >= GOAL_BURST_JOBS_PER_S,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200, help="sequential jobs (latency)")
    parser.add_argument("--burst", type=int, default=50, help="jobs submitted at once (throughput)")
    parser.add_argument("--slots", type=int, default=4, help="the worker's slots")
    parser.add_argument("--profile", type=Path, help="py-spy the api and worker into this folder")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery baseline")
    args = parser.parse_args()

    celery = None if args.no_celery else peer_celery.measure(args.jobs, args.burst)
    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state), {"THEODOLITE_WORKER_SLOTS": str(args.slots)})
        started = time.perf_counter()
        up_isolated(config)
        stack_start_s = time.perf_counter() - started
        recorders = start_profiles(config, args.profile) if args.profile else []
        try:
            with (
                TheodoliteClient(config.api_url, api_key=config.admin_key()) as client,
                httpx.Client(
                    base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=30
                ) as http,
            ):
                experiment = client.ensure_experiment("bench-latency")
                entrypoint = client.upload_entrypoint(TRIVIAL)
                body = {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}
                to_running, to_terminal, failed = [], [], 0
                for i in range(args.jobs):
                    job = client.submit_job(**body, params={"n": i})
                    job = wait_terminal(http, job["id"])
                    failed += job["status"] != "succeeded"
                    queued = at(job, "queued")
                    to_running.append((at(job, "running") - queued).total_seconds() * 1000)
                    to_terminal.append((at(job, job["status"]) - queued).total_seconds() * 1000)
                    if (i + 1) % 50 == 0:
                        print(f"  {i + 1}/{args.jobs} jobs", file=sys.stderr)

                burst_started = time.perf_counter()
                ids = [client.submit_job(**body, params={"n": i})["id"] for i in range(args.burst)]
                for job_id in ids:
                    wait_terminal(http, job_id)
                burst_s = time.perf_counter() - burst_started
        finally:
            stop_profiles(recorders)
            down_isolated(config)

    direct = direct_runs(min(args.jobs, 50))
    report: dict = {
        "note": f"{os.cpu_count()} CPUs shared with whatever else runs: compare within one run",
        "jobs": args.jobs,
        "slots": args.slots,
        "failed": failed,
        "stack_start_s": round(stack_start_s, 1),
        "submit_to_running_ms": percentiles(to_running),
        "submit_to_terminal_ms": percentiles(to_terminal),
        "direct_run_ms": percentiles(direct),
        "overhead_ratio_p50": round(statistics.median(to_terminal) / statistics.median(direct), 2),
        "burst": {
            "jobs": args.burst,
            "seconds": round(burst_s, 2),
            "jobs_per_s": round(args.burst / burst_s, 2),
        },
        "celery": celery,
    }
    if celery is not None:
        report["ratios"] = {
            "running_p50_vs_celery_start": round(
                report["submit_to_running_ms"]["p50"] / celery["submit_to_start_ms"]["p50"], 2
            ),
            "terminal_p50_vs_direct": report["overhead_ratio_p50"],
            "terminal_p50_vs_celery_done": round(
                report["submit_to_terminal_ms"]["p50"] / celery["submit_to_done_ms"]["p50"], 2
            ),
            "burst_vs_celery": round(
                report["burst"]["jobs_per_s"] / celery["burst"]["tasks_per_s"], 3
            ),
        }
        report["goals"] = verdicts(report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
