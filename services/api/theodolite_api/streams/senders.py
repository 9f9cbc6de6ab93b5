"""Who may say what on the live path. The live hub hands broker events to open streams before
the api records them, so it checks their senders itself: a status change must be the api's own
announcement, and a log line or progress report must come from the worker holding that job's
current attempt (as the api recorded the claim)."""

from __future__ import annotations

import uuid
from collections import OrderedDict

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job
from theodolite.events import Envelope, JobStatusChanged
from theodolite.signing import API_SIGNER, signer_worker

# Jobs whose claim holder is remembered (the running ones, in practice).
REMEMBERED_JOBS = 4096

Holder = tuple[int, str | None]  # (attempt, worker id)


class ClaimHolders:
    """Looked up once per job and attempt; again when an event names another attempt or worker
    (a retry moved on), so a forger costs a lookup and gets nothing through."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None) -> None:
        # None only for a subclass that knows the holders otherwise (``recorded``: tests).
        self._sessions = sessions
        self._holders: OrderedDict[uuid.UUID, Holder] = OrderedDict()

    async def admits(self, envelope: Envelope, payload: BaseModel, signer: str | None) -> bool:
        if isinstance(payload, JobStatusChanged):
            return signer == API_SIGNER
        worker_id = signer_worker(signer)
        if worker_id is None or envelope.job_id is None:
            return False
        claimed: Holder = (envelope.attempt, worker_id)
        if self._holders.get(envelope.job_id) == claimed:
            return True
        holder = await self.recorded(envelope.job_id)
        if holder is not None:
            self._remember(envelope.job_id, holder)
        return holder == claimed

    async def recorded(self, job_id: uuid.UUID) -> Holder | None:
        """The job's current attempt and its worker, as the database holds them."""
        assert self._sessions is not None
        async with self._sessions() as session:
            row = (
                await session.exec(select(Job.attempt, Job.worker_id).where(Job.id == job_id))
            ).first()
        return None if row is None else (row[0], row[1])

    def _remember(self, job_id: uuid.UUID, holder: Holder) -> None:
        self._holders[job_id] = holder
        self._holders.move_to_end(job_id)
        while len(self._holders) > REMEMBERED_JOBS:
            self._holders.popitem(last=False)
