"""``job.started`` -> first graph step running, through the whole stack, with the worker's warm
pool and with it switched off (a fresh interpreter per job). Prints JSON. Not a test.

    .venv/bin/python bench/graph_start.py --jobs 20

Each job runs a one-step graph whose task records ``time.time()`` as it starts; the latency is
that time minus the job's recorded ``running`` transition (the worker's job.started). The task
also prints that time, read from the job's log, so a job whose graph outputs are refused (see
``--sandbox``) is measured as well; how many jobs succeeded is reported.

With ``--sandbox`` it measures the same with each job in its sandbox (the worker's default) and
with the sandbox switched off (``THEODOLITE_WORKER_SANDBOX=false``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from stats import percentiles

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.archives import make_tar, mlproject  # noqa: E402
from theodolite.client import TheodoliteClient  # noqa: E402
from theodolite.devstack import (  # noqa: E402
    down_isolated,
    isolated_config,
    start_worker,
    stop_process,
    up_isolated,
    worker_name,
)

TASKS = """\
import time
from theodolite.sdk import task

@task
def stamp(n: int = 0) -> float:
    started = time.time()
    print("first step started at", started, flush=True)
    return started
"""
GRAPH = """\
local_plugins: {bench: bench_tasks}
parameters: {n: {type: int, default: 0}}
steps:
  first: {task: bench.stamp, inputs: {n: $n}}
outputs:
  first_step_started: {from: $first, kind: metric}
"""
MLPROJECT = mlproject("graph-start", "theodolite run-graph graph.yaml -P n={n}", n=("int", 0))


def archive() -> bytes:
    return make_tar({"MLproject": MLPROJECT, "graph.yaml": GRAPH, "bench_tasks.py": TASKS})


def measure(
    client: TheodoliteClient, http: httpx.Client, body: dict, jobs: int
) -> tuple[list[float], int]:
    latencies, succeeded = [], 0
    for i in range(jobs + 1):  # the first run of each kind is not counted
        job = client.wait(client.submit_job(**body, params={"n": i})["id"], poll_s=0.05)
        stamps = [line for line in client.job_logs(job["id"]) if "first step started at" in line]
        assert stamps, job["log_tail"]
        started = float(stamps[-1].split()[-1])
        running = next(h["at"] for h in job["history"] if h["status"] == "running")
        if i:
            succeeded += job["status"] == "succeeded"
            latencies.append((started - datetime.fromisoformat(running).timestamp()) * 1000)
    return latencies, succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--sandbox", action="store_true", help="also with the sandbox off")
    args = parser.parse_args()
    report: dict[str, object] = {"jobs": args.jobs}
    kinds = {"warm": {}, "cold": {"THEODOLITE_WORKER_WARM_POOL": "false"}}
    if args.sandbox:
        off = {"THEODOLITE_WORKER_SANDBOX": "false"}
        kinds = {
            **{f"{kind}_sandboxed": env for kind, env in kinds.items()},
            **{f"{kind}_unsandboxed": {**env, **off} for kind, env in kinds.items()},
        }
    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        up_isolated(config)
        try:
            with (
                TheodoliteClient(config.api_url, api_key=config.admin_key()) as client,
                httpx.Client() as http,
            ):
                experiment = client.ensure_experiment("bench-graph-start")
                entrypoint = client._call(
                    "POST", "/entrypoints", files={"archive": ("g.tar.gz", archive())}
                )
                body = {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}
                for index, (kind, env) in enumerate(kinds.items()):
                    if index:
                        stop_process(config, worker_name("cpu"))
                        start_worker(config, "cpu", env=env)
                    time.sleep(10)  # let the pool finish preloading
                    latencies, succeeded = measure(client, http, body, args.jobs)
                    report[f"{kind}_ms"] = percentiles(latencies)
                    report[f"{kind}_succeeded"] = succeeded
        finally:
            down_isolated(config)
    warm, cold = ("warm_sandboxed", "cold_sandboxed") if args.sandbox else ("warm", "cold")
    report["speedup_p50"] = round(report[f"{cold}_ms"]["p50"] / report[f"{warm}_ms"]["p50"], 1)  # type: ignore[index]
    print(json.dumps(report, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
