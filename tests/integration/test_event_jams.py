"""Events that cannot jam, on the real RabbitMQ and PostgreSQL: a job that prints a NUL finishes
with the NUL visible in its log, an event the database refuses is dead-lettered at once (not
retried up to the delivery limit while every job's events wait), and a heartbeat is applied while
the job events' queue is blocked."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from tests.fixtures.archives import make_tar, mlproject
from tests.fixtures.stack import Stack
from tests.integration.helpers import job_target, submit, wait_for_end
from theodolite import topology
from theodolite.events import Envelope, JobLog, JobSucceeded, make_event
from theodolite.signing import SigningKey, worker_signer

PRINTER = """\
import sys
if sys.argv[1] == "yes":
    sys.stdout.buffer.write(b"before\\x00after\\n")
print("done", flush=True)
"""
MLPROJECT = mlproject("printer", "python printer.py {nul}", nul=("string", "no"))


@pytest.fixture(scope="module")
def printer(stack: Stack) -> dict[str, str]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as client:
        return job_target(client, make_tar({"MLproject": MLPROJECT, "printer.py": PRINTER}))


def _run(api: httpx.Client, target: dict[str, str], nul: str) -> str:
    response = submit(api, **target, params={"nul": nul})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _logs(api: httpx.Client, job_id: str) -> str:
    return api.get(f"/jobs/{job_id}/logs").text


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


class Events:
    """Publishes to theodolite.events as the job's worker would (signed with its token: the api
    applies a job's events only from the worker holding its claim), and reads the api's dead
    letters."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, stack: Stack) -> None:
        self.channel = channel
        self.stack = stack

    async def publish(self, event: Envelope, job: dict[str, Any]) -> None:
        worker_id = job["worker_id"]
        key = SigningKey(
            worker_signer(worker_id), self.stack.config.worker_token(worker_id).encode()
        )
        body = event.to_bytes()
        exchange = await self.channel.get_exchange(topology.EVENTS_EXCHANGE.name)
        await exchange.publish(
            aio_pika.Message(
                body, message_id=str(event.id), type=event.type.value, headers=key.headers(body)
            ),
            routing_key=event.type.value,
        )

    async def dead_letters(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """The messages in events.api.dead, left there."""
        queue = await self.channel.declare_queue(
            topology.dead_letter_queue_name(topology.API_EVENTS_QUEUE), passive=True
        )
        found = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            found.append(message)
        for message in found:
            await message.nack(requeue=True)
        return found


async def _with_events(stack: Stack, body: Callable[[Events], Awaitable[None]]) -> None:
    connection = await aio_pika.connect(stack.config.broker_url)
    async with connection:
        await body(Events(await connection.channel(), stack))


def _event(job: dict[str, Any], seq: int, payload: BaseModel) -> Envelope:
    return make_event(
        payload, producer="test", job_id=uuid.UUID(job["id"]), attempt=job["attempt"], seq=seq
    )


def test_a_job_printing_nul_finishes_and_the_next_job_is_not_held_up(
    api: httpx.Client, printer: dict[str, str]
) -> None:
    with_nul = _run(api, printer, "yes")
    after = _run(api, printer, "no")
    assert wait_for_end(api, with_nul, timeout_s=120)["status"] == "succeeded"
    assert wait_for_end(api, after, timeout_s=120)["status"] == "succeeded"
    # The worker wrote the NUL as the four characters \x00: visible, and storable.
    assert "before\\x00after\ndone\n" in _logs(api, with_nul)
    assert _logs(api, after).endswith("done\n")


def test_an_event_the_database_refuses_is_dead_lettered_at_once(
    api: httpx.Client, stack: Stack, printer: dict[str, str]
) -> None:
    first, second = (_run(api, printer, "no") for _ in range(2))
    jobs = [wait_for_end(api, job_id, timeout_s=120) for job_id in (first, second)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]

    async def scenario(events: Events) -> None:
        before = len(await events.dead_letters())
        # As a worker that does not escape its output would send it: stored with U+FFFD.
        await events.publish(_event(jobs[0], 10_000, JobLog(lines=["raw\x00nul"])), jobs[0])
        # An exit code PostgreSQL's integer column cannot hold: refused on every try.
        refused = _event(jobs[0], 10_001, JobSucceeded(mlflow_run_id="r", exit_code=2**40))
        await events.publish(refused, jobs[0])
        behind = _event(jobs[1], 10_000, JobLog(lines=["behind the refused one"]))
        await events.publish(behind, jobs[1])

        async def applied() -> bool:
            return "behind the refused one" in _logs(api, second)

        await _until(applied, "the event behind the refused one")
        dead = await events.dead_letters()
        assert len(dead) == before + 1
        (letter,) = [m for m in dead if m.message_id == str(refused.id)]
        # Rejected on its first delivery; a retried message would die of the delivery limit.
        assert letter.headers["x-first-death-reason"] == "rejected"

    asyncio.run(_with_events(stack, scenario))
    assert "raw\ufffdnul" in _logs(api, first)


def test_a_heartbeat_is_applied_while_the_job_events_queue_is_blocked(
    api: httpx.Client, stack: Stack, printer: dict[str, str]
) -> None:
    job = wait_for_end(api, _run(api, printer, "no"), timeout_s=120)
    database = f"{stack.config.postgres_url}/{stack.config.database}"

    async def scenario(events: Events) -> None:
        blocker = await asyncpg.connect(database)
        reader = await asyncpg.connect(database)

        async def last_heartbeat() -> datetime:
            seen = await reader.fetchval("SELECT max(last_seen_at) FROM workers")
            assert isinstance(seen, datetime)
            return seen

        try:
            transaction = blocker.transaction()
            await transaction.start()
            # The api applies job events one at a time, each with its job's row locked: with
            # this row held, the job event below waits, and every job event behind it.
            await blocker.execute(
                "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(job["id"])
            )
            await events.publish(_event(job, 10_000, JobLog(lines=["held up"])), job)
            held_since = await last_heartbeat()

            async def heard_again() -> bool:
                return await last_heartbeat() > held_since

            await _until(heard_again, "a heartbeat while job events are held", timeout_s=30)
            assert "held up" not in _logs(api, job["id"])  # the job events were held indeed
            await transaction.rollback()

            async def released() -> bool:
                return "held up" in _logs(api, job["id"])

            await _until(released, "the held job event")
        finally:
            await blocker.close()
            await reader.close()

    asyncio.run(_with_events(stack, scenario))
