"""The Celery baseline of issue 16: the same broker, a trivial task, one worker process with
acks_late and prefetch 1. Prints JSON; `submit_latency.py` runs it in the same run and prints the
testbed's ratios against it. Not part of the tests; Celery comes with the devtools' `bench` extra.

    .venv/bin/python bench/peer_celery.py --tasks 200 --burst 50

Runs on a RabbitMQ vhost of its own (made and removed with rabbitmqctl, as the private stacks
do). submit -> start is the task's own clock at entry minus the client's just before publishing
(one machine, one clock); submit -> done is when the client holds the result (rpc backend, so
the result travels back over the same broker, as the testbed's terminal event does).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery
from stats import percentiles

HERE = Path(__file__).parent
VHOST_ENV = "BENCH_CELERY_VHOST"


def make_app(vhost: str) -> Celery:
    app = Celery(
        "peer_celery",
        broker=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        backend="rpc://",
    )
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.task(name="trivial")(trivial)
    return app


def trivial(n: int) -> float:
    """The task: note when it started (the trivial script only prints a line)."""
    started = time.time()
    print("trivial", n)
    return started


# The worker process imports this module as `-A peer_celery` and finds `app` here.
app = make_app(os.environ[VHOST_ENV]) if VHOST_ENV in os.environ else None


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _start_worker(vhost: str) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "peer_celery", "worker"),
            *("--pool", "prefork", "--concurrency", "1", "--prefetch-multiplier", "1"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"),
        ],
        cwd=HERE,
        env={**os.environ, VHOST_ENV: vhost},
        stdout=subprocess.DEVNULL,
    )
    return worker


def measure(tasks: int, burst: int) -> dict[str, Any]:
    """Sequential tasks (latency), then a burst (throughput), on a vhost of its own."""
    vhost = f"bench-celery-{secrets.token_hex(4)}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    client = make_app(vhost)
    worker = _start_worker(vhost)
    try:
        client.send_task("trivial", args=[-1]).get(timeout=120)  # the worker is up and warm
        to_start, to_done = [], []
        for i in range(tasks):
            submitted = time.time()
            started = client.send_task("trivial", args=[i]).get(timeout=30)
            done = time.time()
            to_start.append((started - submitted) * 1000)
            to_done.append((done - submitted) * 1000)
        burst_started = time.perf_counter()
        results = [client.send_task("trivial", args=[i]) for i in range(burst)]
        for result in results:
            result.get(timeout=60)
        burst_s = time.perf_counter() - burst_started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        client.close()
        _rabbitmqctl("delete_vhost", vhost)
    return {
        "tasks": tasks,
        "submit_to_start_ms": percentiles(to_start),
        "submit_to_done_ms": percentiles(to_done),
        "burst": {
            "tasks": burst,
            "seconds": round(burst_s, 2),
            "tasks_per_s": round(burst / burst_s, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200, help="sequential tasks (latency)")
    parser.add_argument("--burst", type=int, default=50, help="tasks sent at once (throughput)")
    args = parser.parse_args()
    print(json.dumps(measure(args.tasks, args.burst), indent=2))


if __name__ == "__main__":
    main()
