"""The workers' plane on a real stack: claims are served only by the internal listener, and only
to a worker holding its own token, claiming for itself."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import httpx
from pydantic import BaseModel

from tests.fixtures.events import job_submitted
from tests.fixtures.stack import Stack
from tests.integration.helpers import (
    create_queue,
    job_target,
    submit,
    unique,
    wait_for_end,
    wait_until,
)
from theodolite import topology
from theodolite.broker import Broker
from theodolite.devstack.services import worker_env
from theodolite.events import (
    Envelope,
    JobLog,
    JobSubmitted,
    JobSucceeded,
    decode_event,
    make_event,
)
from theodolite.signing import SigningKey, worker_signer


def _claim(url: str, worker_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/internal/jobs/{uuid.uuid4()}/claim",
        json={
            "attempt": 1,
            "worker_id": worker_id,
            "submitted": job_submitted().model_dump(mode="json"),
        },
        headers=headers,
        timeout=30,
    )


def test_claims_are_only_the_internal_listeners_and_only_a_workers_own(stack: Stack) -> None:
    config = stack.config
    a, b = "plane-worker-a", "plane-worker-b"

    def holding(token_of: str, named: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {config.worker_token(token_of)}",
            "Theodolite-Worker-Id": named,
        }

    # The public port has no internal route, whatever the caller holds.
    assert _claim(config.api_url, a, {**holding(a, a), **stack.headers}).status_code == 404
    answers = {
        "no token": _claim(config.api_internal_url, a, {}),
        "forged token": _claim(config.api_internal_url, a, {"Authorization": f"Bearer {a}.00"}),
        "another's token": _claim(config.api_internal_url, a, holding(b, a)),
        "A claiming as B": _claim(config.api_internal_url, b, holding(a, a)),
        "its own": _claim(config.api_internal_url, a, holding(a, a)),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "no token": 401,
        "forged token": 401,
        "another's token": 403,
        "A claiming as B": 403,
        "its own": 404,  # let through to the arbiter, which knows no such job
    }
    assert answers["its own"].json()["reason"] == "no such job"


def test_the_stack_gives_each_worker_the_internal_listener_and_its_own_token(
    stack: Stack,
) -> None:
    env = worker_env(stack.config, "cpu", "worker-cpu-7")
    assert env["THEODOLITE_WORKER_API_URL"] == stack.config.api_internal_url
    worker_id = env["THEODOLITE_WORKER_WORKER_ID"]
    assert env["THEODOLITE_WORKER_TOKEN"] == stack.config.worker_token(worker_id)
    assert stack.config.api_internal_port != stack.config.api_port


async def _take_job_message(broker_url: str, queue: str) -> JobSubmitted:
    """The job message waiting on ``queue``, taken as a worker takes it."""
    connection = await aio_pika.connect(broker_url)
    async with connection:
        channel = await connection.channel()
        waiting = await channel.get_queue(topology.job_queue_name(queue), ensure=False)
        for _ in range(100):
            message = await waiting.get(fail=False)
            if message is not None:
                await message.ack()
                _, payload = decode_event(message.body)
                assert isinstance(payload, JobSubmitted)
                return payload
            await asyncio.sleep(0.1)
    raise AssertionError(f"no job message on {queue}")


async def _publish(broker_url: str, key: SigningKey | None, *events: Envelope) -> None:
    async with Broker(broker_url, client_name="forger", signing_key=key) as broker:
        for event in events:
            await broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)


def test_only_the_claim_holders_signed_events_change_a_job(
    stack: Stack, api: httpx.Client, scripted_archive: bytes
) -> None:
    """As someone holding the broker's URL would try it: a job message with other parameters
    for a real job, a job.succeeded with attempt 7 that nobody signed, and events signed by a
    worker that does not hold the claim. None changes the job; the claim holder's own events
    then do."""
    config = stack.config
    holder, other = unique("holder"), unique("other")
    queue = create_queue(api)
    job = submit(api, **job_target(api, scripted_archive), params={}, queue=queue)
    assert job.status_code == 202, job.text
    job_id = uuid.UUID(job.json()["id"])
    message = asyncio.run(_take_job_message(config.broker_url, queue))

    def claim(submitted: JobSubmitted) -> httpx.Response:
        return httpx.post(
            f"{config.api_internal_url}/internal/jobs/{job_id}/claim",
            json={
                "attempt": 1,
                "worker_id": holder,
                "submitted": submitted.model_dump(mode="json"),
            },
            headers={
                "Authorization": f"Bearer {config.worker_token(holder)}",
                "Theodolite-Worker-Id": holder,
            },
            timeout=30,
        )

    # A message forged for this job (other parameters, another archive) is not run.
    forged_message = message.model_copy(update={"params": {"x": "1"}, "archive_sha256": "0" * 64})
    refused = claim(forged_message)
    assert refused.status_code == 409, refused.text
    assert refused.json()["reason"] == (
        "the job message is not the api's (archive_sha256, params differ)"
    )
    assert api.get(f"/jobs/{job_id}").json()["status"] == "queued"
    claimed = claim(message)
    assert claimed.status_code == 200 and claimed.json()["claimed"], claimed.text

    def event(payload: BaseModel, seq: int, attempt: int = 1) -> Envelope:
        return make_event(payload, producer=holder, job_id=job_id, attempt=attempt, seq=seq)

    def key_of(worker_id: str) -> SigningKey:
        return SigningKey(worker_signer(worker_id), config.worker_token(worker_id).encode())

    forged = JobSucceeded(mlflow_run_id="forged", exit_code=0)
    asyncio.run(_publish(config.broker_url, None, event(forged, 7, attempt=7)))
    asyncio.run(_publish(config.broker_url, None, event(JobLog(lines=["unsigned"]), 1)))
    asyncio.run(
        _publish(
            config.broker_url,
            key_of(other),
            event(JobLog(lines=["not the holder"]), 1),
            event(forged, 2),
        )
    )
    # The holder's own line comes after the forgeries on the same queue: once it is recorded,
    # they were all looked at.
    asyncio.run(_publish(config.broker_url, key_of(holder), event(JobLog(lines=["mine"]), 1)))
    wait_until(lambda: "mine" in api.get(f"/jobs/{job_id}/logs").text, what="the holder's line")
    logs = api.get(f"/jobs/{job_id}/logs").text
    assert "unsigned" not in logs and "not the holder" not in logs
    state = api.get(f"/jobs/{job_id}").json()
    assert (state["status"], state["attempt"], state["mlflow_run_id"]) == ("running", 1, None)

    done = JobSucceeded(mlflow_run_id="real", exit_code=0)
    asyncio.run(_publish(config.broker_url, key_of(holder), event(done, 2)))
    assert wait_for_end(api, str(job_id), timeout_s=30)["status"] == "succeeded"
