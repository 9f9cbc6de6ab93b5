"""Submit -> running and submit -> terminal latency of a trivial entry point, against running
the same script directly. Prints JSON. Not part of the tests.

    .venv/bin/python bench/submit_latency.py --jobs 200

Starts its own private stack (free ports, own databases and RabbitMQ vhost) and removes it.
Latencies come from the job's recorded transitions (server-side timestamps), so polling does
not blur them. Jobs run one after another (no queueing), then a burst measures throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from stats import percentiles

from theodolite.client import TheodoliteClient
from theodolite.devstack import down_isolated, isolated_config, up_isolated

TRIVIAL = Path(__file__).parent / "trivial"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200, help="sequential jobs (latency)")
    parser.add_argument("--burst", type=int, default=50, help="jobs submitted at once (throughput)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        started = time.perf_counter()
        up_isolated(config)
        stack_start_s = time.perf_counter() - started
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
            down_isolated(config)

    direct = direct_runs(min(args.jobs, 50))
    report = {
        "jobs": args.jobs,
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
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
