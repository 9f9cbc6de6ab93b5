"""Job control and reliability through the api: cancel in each state, timeouts, lost workers,
retries, idempotent submission, dead letters, no-worker visibility and SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aio_pika
import httpx
import pytest

from tests.fixtures.archives import make_tar, mlproject
from tests.fixtures.stack import Stack
from tests.integration.helpers import create_queue, job_target, submit, wait_for_end, wait_until
from theodolite import topology
from theodolite.devstack import running_pid, start_worker, stop_process, worker_name

SLEEPER = """\
import os, sys, time
seconds, code, fail_first = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "yes"
if fail_first and os.environ["THEODOLITE_JOB_ATTEMPT"] == "1":  # attempts share no files
    print("first attempt fails on purpose", flush=True)
    sys.exit(7)
print("started", flush=True)
deadline = time.time() + seconds
while time.time() < deadline:
    time.sleep(0.2)
print("finished", flush=True)
sys.exit(code)
"""
MLPROJECT = mlproject(
    "sleeper",
    "python sleeper.py {seconds} {code} {fail_first}",
    seconds=("float", 1),
    code=("int", 0),
    fail_first=("string", "no"),
)


@pytest.fixture(scope="module")
def sleeper(stack: Stack) -> dict[str, str]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as client:
        return job_target(client, make_tar({"MLproject": MLPROJECT, "sleeper.py": SLEEPER}))


def job(api: httpx.Client, ids: dict[str, str], **body: Any) -> dict[str, Any]:
    response = submit(api, **ids, **body)
    assert response.status_code == 202, response.text
    return response.json()


def status_of(api: httpx.Client, job_id: str) -> str:
    return api.get(f"/jobs/{job_id}").json()["status"]


def wait_status(
    api: httpx.Client, job_id: str, wanted: str, timeout_s: float = 60
) -> dict[str, Any]:
    wait_until(lambda: status_of(api, job_id) == wanted, timeout_s=timeout_s, what=f"job {wanted}")
    return api.get(f"/jobs/{job_id}").json()


def mlflow_status(stack: Stack, run_id: str) -> str:
    run = httpx.get(f"{stack.config.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id})
    return run.json()["run"]["info"]["status"]


def test_a_cancelled_queued_job_never_starts(
    api: httpx.Client, stack: Stack, sleeper: dict
) -> None:
    queue = create_queue(api)
    queued = job(api, sleeper, queue=queue, params={"seconds": 0.1})
    cancelled = api.post(f"/jobs/{queued['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    start_worker(stack.config, queue)
    try:
        wait_until(
            lambda: api.get(f"/queues/{queue}").json()["waiting_jobs"] == 0, what="message consumed"
        )
        time.sleep(1)
        final = api.get(f"/jobs/{queued['id']}").json()
        assert final["status"] == "cancelled"
        assert [h["status"] for h in final["history"]] == ["queued", "cancelled"]
        assert final["mlflow_run_id"] is None
    finally:
        stop_process(stack.config, worker_name(queue))


def test_a_running_job_is_stopped_and_its_run_killed(
    api: httpx.Client, stack: Stack, sleeper: dict
) -> None:
    running = job(api, sleeper, params={"seconds": 60})
    wait_status(api, running["id"], "running")
    wait_until(
        lambda: "started" in api.get(f"/jobs/{running['id']}/logs").text, what="script start"
    )
    started = time.monotonic()
    assert api.post(f"/jobs/{running['id']}/cancel").status_code == 202
    final = wait_for_end(api, running["id"], timeout_s=30)
    assert final["status"] == "cancelled"
    assert time.monotonic() - started < 10
    assert [h["status"] for h in final["history"]] == ["queued", "running", "cancelled"]
    assert mlflow_status(stack, final["mlflow_run_id"]) == "KILLED"
    again = api.post(f"/jobs/{running['id']}/cancel")
    assert again.status_code == 409 and "ended already" in again.json()["detail"]


def test_a_job_over_its_time_is_killed_and_timed_out(api: httpx.Client, sleeper: dict) -> None:
    slow = job(api, sleeper, params={"seconds": 60}, timeout_s=2)
    final = wait_for_end(api, slow["id"], timeout_s=60)
    assert final["status"] == "timed_out"
    assert final["error"] == "timed out after 2 s"


def test_a_failing_script_is_retried_when_asked(api: httpx.Client, sleeper: dict) -> None:
    retried = job(
        api,
        sleeper,
        params={"seconds": 0.1, "fail_first": "yes"},
        max_retries=2,
        retry_on_failure=True,
        retry_backoff_s=0.5,
    )
    final = wait_for_end(api, retried["id"], timeout_s=60)
    assert final["status"] == "succeeded", final
    assert final["attempt"] == 2
    statuses = [h["status"] for h in final["history"]]
    assert statuses == ["queued", "running", "queued", "running", "succeeded"]
    assert final["history"][2]["detail"].startswith("retry 1/2")
    no_retry = job(api, sleeper, params={"seconds": 0.1, "code": 3})
    assert wait_for_end(api, no_retry["id"])["attempt"] == 1


def _kill_worker(stack: Stack, queue: str) -> None:
    pid = running_pid(stack.config, worker_name(queue))
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    stop_process(stack.config, worker_name(queue))  # reaps it


@pytest.mark.parametrize("max_retries", [1, 0])
def test_a_job_whose_worker_is_killed_is_lost_then_requeued_or_failed(
    api: httpx.Client, stack: Stack, sleeper: dict, max_retries: int
) -> None:
    queue = create_queue(api)
    start_worker(stack.config, queue)
    victim = job(
        api,
        sleeper,
        queue=queue,
        params={"seconds": 4},
        max_retries=max_retries,
        retry_backoff_s=0.2,
    )
    wait_status(api, victim["id"], "running")
    _kill_worker(stack, queue)
    if max_retries == 0:
        final = wait_for_end(api, victim["id"], timeout_s=60)
        assert final["status"] == "failed"
        assert "stopped heartbeating" in final["error"] and "no retries left" in final["error"]
        return
    wait_until(
        lambda: "lost" in [h["status"] for h in api.get(f"/jobs/{victim['id']}").json()["history"]],
        timeout_s=60,
        what="the job to be found lost",
    )
    start_worker(stack.config, queue)
    try:
        final = wait_for_end(api, victim["id"], timeout_s=120)
    finally:
        stop_process(stack.config, worker_name(queue))
    assert final["status"] == "succeeded"
    assert final["attempt"] == 2
    statuses = [h["status"] for h in final["history"]]
    assert statuses == ["queued", "running", "lost", "queued", "running", "succeeded"]


def test_idempotent_submission(api: httpx.Client, sleeper: dict) -> None:
    key = {"Idempotency-Key": f"key-{time.time_ns()}"}
    # With a callback: its signing secret is shown once, to the first answer only.
    body = {**sleeper, "params": {"seconds": 0.1}, "callback_url": "http://127.0.0.1:9/hook"}
    first = api.post("/jobs", json=body, headers=key)
    second = api.post("/jobs", json=body, headers=key)
    assert first.status_code == 202 and second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["webhook_secret"].startswith("whsec_")
    assert second.json()["webhook_secret"] is None
    other = api.post("/jobs", json={**body, "params": {"seconds": 0.2}}, headers=key)
    assert other.status_code == 422
    assert other.json()["problems"][0]["field"] == "Idempotency-Key"
    listed = api.get(
        "/jobs", params={"experiment_id": sleeper["experiment_id"], "limit": 500}
    ).json()
    assert sum(1 for j in listed["data"] if j["id"] == first.json()["id"]) == 1


def test_a_poison_message_ends_in_the_dead_letter_queue(api: httpx.Client, stack: Stack) -> None:
    queue = create_queue(api)
    start_worker(stack.config, queue)

    async def publish() -> None:
        connection = await aio_pika.connect(stack.config.broker_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(topology.JOBS_EXCHANGE.name)
            await exchange.publish(
                aio_pika.Message(b"\x00not json", type="job.submitted"), routing_key=queue
            )

    try:
        asyncio.run(publish())
        wait_until(
            lambda: api.get(f"/queues/{queue}").json()["dead_letters"] == 1, what="dead letter"
        )
        detail = api.get(f"/queues/{queue}").json()
        assert detail["waiting_jobs"] == 0
        (dead,) = detail["recent_dead_letters"]
        assert dead["reason"] == "rejected"
        # Peeking leaves the message there (it returns a moment after being read).
        wait_until(lambda: api.get(f"/queues/{queue}").json()["dead_letters"] == 1, what="peeked")
    finally:
        stop_process(stack.config, worker_name(queue))


def test_a_job_without_a_live_worker_says_so(api: httpx.Client, sleeper: dict) -> None:
    queue = create_queue(api)
    waiting = job(api, sleeper, queue=queue)
    assert waiting["waiting_for_worker"] is True
    wait_until(lambda: api.get(f"/queues/{queue}").json()["waiting_for_worker"], what="queue view")
    served = job(api, sleeper, params={"seconds": 0.1})
    assert served["waiting_for_worker"] is False
    api.post(f"/jobs/{waiting['id']}/cancel")


def test_sigterm_lets_short_jobs_finish_and_hands_long_ones_back(
    api: httpx.Client, stack: Stack, sleeper: dict
) -> None:
    queue = create_queue(api)
    start_worker(stack.config, queue, env={"THEODOLITE_WORKER_SHUTDOWN_GRACE_S": "2"})
    long_job = job(api, sleeper, queue=queue, params={"seconds": 6})
    wait_status(api, long_job["id"], "running")
    stop_process(stack.config, worker_name(queue), grace_s=30)  # SIGTERM, then waits
    handed_back = wait_status(api, long_job["id"], "queued", timeout_s=15)
    assert handed_back["history"][-1]["detail"].startswith("handed back")
    start_worker(stack.config, queue, env={"THEODOLITE_WORKER_SHUTDOWN_GRACE_S": "30"})
    try:
        short_job = job(api, sleeper, queue=queue, params={"seconds": 1})
        final = wait_for_end(api, long_job["id"], timeout_s=60)
        assert final["status"] == "succeeded" and final["attempt"] == 2
        wait_status(api, short_job["id"], "running")
        stop_process(stack.config, worker_name(queue), grace_s=60)  # the short job finishes first
        assert wait_for_end(api, short_job["id"], timeout_s=15)["status"] == "succeeded"
    finally:
        stop_process(stack.config, worker_name(queue))
