"""Jobs that wait for others (``depends_on``): checked at submission, settled when one ends.

A job with dependencies enters ``waiting``. Each time a job ends, the dependency consumer settles
the jobs waiting on it: queued once every dependency has succeeded, ``skipped`` (terminal, never
run) as soon as one ended otherwise. Dependencies exist before their dependants, so no cycle can
form. The submission holds its dependencies' rows ``FOR SHARE`` until it commits: a dependency
cannot end unseen in between (its end waits for the lock, and its announcement then finds the new
dependant).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive, Experiment, Job, JobDependency, utcnow
from theodolite.lifecycle import JobStatus
from theodolite.problems import Problem
from theodolite_api.auth.callers import Caller
from theodolite_api.jobs import transitions
from theodolite_api.jobs.messages import enqueue_attempt

# A dependency that ended so can never succeed: its dependants are skipped.
ENDED_UNSUCCESSFULLY = frozenset(
    {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT, JobStatus.SKIPPED}
)


class ParameterResolver(Protocol):
    """Fills in a job's parameters from its dependencies' results just before it is queued (a
    pipeline stage's references); why it cannot, or None once done."""

    async def __call__(self, *, session: AsyncSession, job: Job) -> str | None: ...


async def visible_dependencies(
    *, session: AsyncSession, caller: Caller, ids: Sequence[uuid.UUID]
) -> tuple[list[Job], list[Problem]]:
    """The jobs ``ids`` names, locked ``FOR SHARE``; a problem for each one that is missing, not
    the caller's to see (as unknown as a missing one), or named twice."""
    problems: list[Problem] = []
    seen: set[uuid.UUID] = set()
    for index, job_id in enumerate(ids):
        if job_id in seen:
            problems.append(Problem(field=f"depends_on.{index}", message=f"{job_id} named twice"))
        seen.add(job_id)
    if not ids:
        return [], problems
    rows = await session.exec(select(Job).where(col(Job.id).in_(seen)).with_for_update(read=True))
    found = {job.id: job for job in rows if caller.sees(job.group_id)}
    for index, job_id in enumerate(ids):
        if job_id not in found:
            problems.append(Problem(field=f"depends_on.{index}", message=f"no such job {job_id}"))
    return list(found.values()), problems


def entry_status(dependencies: Sequence[Job]) -> JobStatus:
    """Where a new job starts: queued when nothing is left to wait for."""
    if all(job.status == JobStatus.SUCCEEDED.value for job in dependencies):
        return JobStatus.QUEUED
    return JobStatus.WAITING


def record_dependencies(*, session: AsyncSession, job: Job, dependencies: Sequence[Job]) -> None:
    session.add_all(JobDependency(job_id=job.id, depends_on_id=d.id) for d in dependencies)


async def dependencies_of(*, session: AsyncSession, job_id: uuid.UUID) -> list[Job]:
    rows = await session.exec(
        select(Job)
        .join(JobDependency, col(JobDependency.depends_on_id) == col(Job.id))
        .where(JobDependency.job_id == job_id)
    )
    return list(rows)


async def dependency_ids(*, session: AsyncSession, job_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.exec(
        select(JobDependency.depends_on_id).where(JobDependency.job_id == job_id)
    )
    return sorted(rows)


async def waiting_dependants(*, session: AsyncSession, job_id: uuid.UUID) -> list[Job]:
    """The jobs waiting on ``job_id``, locked for update, in a fixed order (no deadlock)."""
    rows = await session.exec(
        select(Job)
        .join(JobDependency, col(JobDependency.job_id) == col(Job.id))
        .where(JobDependency.depends_on_id == job_id, Job.status == JobStatus.WAITING.value)
        .order_by(col(Job.id))
        .with_for_update(of=Job)
    )
    return list(rows)


async def settle_dependants(
    *, session: AsyncSession, job_id: uuid.UUID, resolve: ParameterResolver | None = None
) -> int:
    """After ``job_id`` ended: settle each job waiting on it; how many changed. Does not commit."""
    changed = 0
    for dependant in await waiting_dependants(session=session, job_id=job_id):
        changed += await settle(session=session, job=dependant, resolve=resolve)
    return changed


async def settle(
    *, session: AsyncSession, job: Job, resolve: ParameterResolver | None = None
) -> bool:
    """Queue or skip a waiting job whose dependencies allow it (the caller holds its row lock);
    whether it changed. Skipping is a transition like any other: its announcement settles the
    jobs that wait on this one in turn. A job whose parameters ``resolve`` cannot fill in fails,
    with the reason, and never runs."""
    if job.status != JobStatus.WAITING.value:
        return False
    dependencies = await dependencies_of(session=session, job_id=job.id)
    failed = next((d for d in dependencies if JobStatus(d.status) in ENDED_UNSUCCESSFULLY), None)
    if failed is not None:
        reason = f"dependency {failed.id} ended {failed.status}"
        job.error = reason
        await transitions.api_change(
            session=session, job=job, to=JobStatus.SKIPPED, at=utcnow(), reason=reason
        )
        return True
    if entry_status(dependencies) is JobStatus.WAITING:
        return False
    unresolved = None if resolve is None else await resolve(session=session, job=job)
    if unresolved is not None:
        job.error = unresolved
        await transitions.api_change(
            session=session, job=job, to=JobStatus.FAILED, at=utcnow(), reason=unresolved
        )
        return True
    # Not fenced: the worker's events of this first attempt come after (attempt 1, seq 0).
    await transitions.change_status(
        session=session,
        job=job,
        to=JobStatus.QUEUED,
        at=utcnow(),
        reason="every dependency succeeded",
        attempt=job.attempt,
        seq=job.last_seq,
    )
    await _enqueue(session, job)
    return True


async def _enqueue(session: AsyncSession, job: Job) -> None:
    experiment = await session.get(Experiment, job.experiment_id)
    archive = await session.get(EntryPointArchive, job.entrypoint_id)
    assert experiment is not None and archive is not None  # rows a job names are never deleted
    enqueue_attempt(session=session, job=job, experiment=experiment, archive=archive)
