from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError

from theodolite import topology
from theodolite.db.tables import Queue, utcnow
from theodolite.web.errors import Conflict
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.queues import QueueCreate, QueuePublic
from theodolite_api.state import AppState

router = APIRouter(prefix="/queues", tags=["queues"])


async def _waiting(state: AppState, name: str) -> int | None:
    try:
        return await state.broker.queue_message_count(topology.job_queue_name(name))
    except Exception:  # the listing stays useful while the broker is away
        return None


@router.get("")
async def list_queues(session: SessionDep, state: StateDep) -> Page[QueuePublic]:
    """Every queue with its live workers (heard from recently) and waiting jobs."""
    seen_after = utcnow() - timedelta(seconds=state.settings.worker_liveness_s)
    live = await queue_repo.live_worker_counts(session=session, seen_after=seen_after)
    queues = await queue_repo.all_queues(session=session)
    data = [
        QueuePublic(
            name=q.name,
            description=q.description,
            live_workers=live.get(q.name, 0),
            waiting_jobs=await _waiting(state, q.name),
            created_at=q.created_at,
        )
        for q in queues
    ]
    return Page(data=data, count=len(data))


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Exists"}})
async def create_queue(body: QueueCreate, session: SessionDep, state: StateDep) -> QueuePublic:
    """Add a queue; its broker queue exists at once, so jobs can wait for a worker."""
    if await queue_repo.get(session=session, name=body.name) is not None:
        raise Conflict(f"queue {body.name!r} exists already")
    queue = Queue(name=body.name, description=body.description)
    await state.broker.declare_job_queue(body.name)
    try:
        await queue_repo.add(session=session, queue=queue)
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"queue {body.name!r} exists already") from exc
    return QueuePublic(
        name=queue.name,
        description=queue.description,
        live_workers=0,
        waiting_jobs=0,
        created_at=queue.created_at,
    )
