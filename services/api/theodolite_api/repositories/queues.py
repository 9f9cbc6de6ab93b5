from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, Queue, Worker
from theodolite.downloads import DownloadSupport, common_downloads
from theodolite.environments import EnvironmentSupport, common_support
from theodolite.events import WorkerHeartbeat

Support = TypeVar("Support", bound=BaseModel)


async def get(*, session: AsyncSession, name: str) -> Queue | None:
    return await session.get(Queue, name)


async def all_queues(*, session: AsyncSession) -> list[Queue]:
    return list(await session.exec(select(Queue).order_by(col(Queue.name))))


async def count(*, session: AsyncSession) -> int:
    return (await session.exec(select(func.count()).select_from(Queue))).one()


async def job_count(*, session: AsyncSession, name: str) -> int:
    return (
        await session.exec(select(func.count()).select_from(Job).where(col(Job.queue) == name))
    ).one()


async def delete(*, session: AsyncSession, queue: Queue) -> None:
    await session.delete(queue)
    await session.flush()


def open_to(queue: Queue, group_id: uuid.UUID) -> bool:
    """Whether the group's jobs may be submitted to the queue."""
    return queue.allowed_group_ids is None or str(group_id) in queue.allowed_group_ids


async def live_worker_counts(*, session: AsyncSession, seen_after: datetime) -> dict[str, int]:
    rows = await session.exec(
        select(Worker.queue, func.count())
        .where(col(Worker.last_seen_at) > seen_after, col(Worker.stopping).is_(False))
        .group_by(col(Worker.queue))
    )
    return {queue: count for queue, count in rows}


async def _announced(
    *,
    session: AsyncSession,
    seen_after: datetime,
    column: Any,
    model: type[Support],
    combine: Callable[[list[Support]], Support | None],
) -> dict[str, Support]:
    """Per queue, what all its live workers that announced it offer (``column`` of their rows,
    as ``model``), combined: what every one of them offers."""
    rows = await session.exec(
        select(Worker.queue, column).where(
            col(Worker.last_seen_at) > seen_after, col(Worker.stopping).is_(False)
        )
    )
    announced: dict[str, list[Support]] = {}
    for queue, offer in rows:
        if offer is not None:
            announced.setdefault(queue, []).append(model.model_validate(offer))
    return {
        queue: support
        for queue, supports in announced.items()
        if (support := combine(supports)) is not None
    }


async def environment_support(
    *, session: AsyncSession, seen_after: datetime
) -> dict[str, EnvironmentSupport]:
    """Per queue, what all its live workers that announced it can build."""
    return await _announced(
        session=session,
        seen_after=seen_after,
        column=Worker.environments,
        model=EnvironmentSupport,
        combine=common_support,
    )


async def download_support(
    *, session: AsyncSession, seen_after: datetime
) -> dict[str, DownloadSupport]:
    """Per queue, what all its live workers that announced it download for jobs."""
    return await _announced(
        session=session,
        seen_after=seen_after,
        column=Worker.downloads,
        model=DownloadSupport,
        combine=common_downloads,
    )


async def live_workers(*, session: AsyncSession, queue: str, seen_after: datetime) -> list[Worker]:
    rows = await session.exec(
        select(Worker)
        .where(Worker.queue == queue, col(Worker.last_seen_at) > seen_after)
        .order_by(col(Worker.id))
    )
    return list(rows)


async def record_heartbeat(
    *, session: AsyncSession, heartbeat: WorkerHeartbeat, at: datetime
) -> None:
    values = {
        "id": heartbeat.worker_id,
        "queue": heartbeat.queue,
        "hostname": heartbeat.hostname,
        "pid": heartbeat.pid,
        "slots": heartbeat.slots,
        "busy": heartbeat.busy,
        "stopping": heartbeat.stopping,
        "started_at": heartbeat.started_at,
        "last_seen_at": at,
        "isolation": heartbeat.isolation,
        "environments": None
        if heartbeat.environments is None
        else heartbeat.environments.model_dump(mode="json"),
        "downloads": None
        if heartbeat.downloads is None
        else heartbeat.downloads.model_dump(mode="json"),
    }
    statement = insert(Worker).values(**values)
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=[Worker.id],
            set_={k: v for k, v in values.items() if k != "id"},
            # Heartbeats can arrive out of order: never move last_seen_at backwards.
            where=col(Worker.last_seen_at) < at,
        )
    )
