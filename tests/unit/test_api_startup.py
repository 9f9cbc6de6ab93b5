"""The api's start-up does not wait for the broker to declare every job queue again: with many
quorum queues that took minutes, and readiness waited for it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import sessions
from theodolite.broker import DeclaredQueue
from theodolite.db.tables import Queue
from theodolite.memory_broker import InMemoryBroker
from theodolite_api.app import _declaring_job_queues
from theodolite_api.state import AppState

__all__ = ["sessions"]


class SlowBroker(InMemoryBroker):
    """Declares a job queue only when let through, and fails the first try (a restart)."""

    def __init__(self) -> None:
        super().__init__()
        self.go_on = asyncio.Event()
        self.tries = 0

    async def declare_job_queue(self, queue: str) -> DeclaredQueue:
        self.tries += 1
        await self.go_on.wait()
        if self.tries == 1:
            raise ConnectionError("the broker is restarting")
        return await super().declare_job_queue(queue)


async def test_job_queues_are_declared_in_the_background_until_it_works(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(Queue(name="startup-q"))
        await session.commit()
    async with SlowBroker() as broker:
        state = cast(AppState, SimpleNamespace(sessions=sessions, broker=broker))
        async with _declaring_job_queues(state):
            # In the block (the api serving, readyz answering) while the broker holds back.
            await asyncio.sleep(0.2)
            assert broker.tries >= 1 and "jobs.startup-q" not in broker.queues
            broker.go_on.set()
            for _ in range(100):
                if "jobs.startup-q" in broker.queues:
                    break
                await asyncio.sleep(0.05)
        declared: Any = broker.queues
        assert "jobs.startup-q" in declared and broker.tries >= 2
