from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy.exc import IntegrityError

from theodolite import topology
from theodolite.db.tables import Queue, utcnow
from theodolite.downloads import DownloadSupport
from theodolite.environments import EnvironmentSupport
from theodolite.problems import Problem
from theodolite.web.errors import Conflict, InvalidSubmission, found_or_404
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import identity as identity_repo
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.repositories import rows
from theodolite_api.schemas.common import Name, Page, limits_row
from theodolite_api.schemas.queues import (
    DeadLetterPublic,
    QueueCreate,
    QueueDetail,
    QueueDownloads,
    QueueEnvironments,
    QueuePublic,
    WorkerPublic,
)
from theodolite_api.state import AppState

router = APIRouter(prefix="/queues", tags=["queues"])
RECENT_DEAD_LETTERS = 10


async def _count(state: AppState, broker_queue: str) -> int | None:
    try:
        return await state.broker.queue_message_count(broker_queue)
    except Exception:  # the listing stays useful while the broker is away
        return None


def _environments(support: EnvironmentSupport | None) -> QueueEnvironments | None:
    if support is None:
        return None
    kinds = support.kinds()
    managers = ["local", *(["uv", "virtualenv"] if "python" in kinds else [])]
    return QueueEnvironments(
        kinds=kinds,
        env_managers=managers + (["conda"] if "conda" in kinds else []),
        pythons=support.pythons,
        uv=support.uv,
        conda=support.conda,
    )


def _public(
    queue: Queue,
    live: int,
    waiting: int | None,
    support: EnvironmentSupport | None = None,
    downloads: DownloadSupport | None = None,
) -> QueuePublic:
    return QueuePublic(
        name=queue.name,
        description=queue.description,
        live_workers=live,
        waiting_jobs=waiting,
        waiting_for_worker=bool(waiting) and live == 0,
        max_limits=queue.max_limits,
        environments=_environments(support),
        downloads=None if downloads is None else QueueDownloads(**downloads.model_dump()),
        created_at=queue.created_at,
    )


def _seen_after(state: AppState) -> datetime:
    return utcnow() - timedelta(seconds=state.settings.worker_liveness_s)


async def _live(session: SessionDep, state: AppState) -> dict[str, int]:
    return await queue_repo.live_worker_counts(session=session, seen_after=_seen_after(state))


@router.get("")
async def list_queues(session: SessionDep, state: StateDep) -> Page[QueuePublic]:
    """Every queue with its live workers (heard from recently) and waiting jobs."""
    live = await _live(session, state)
    support = await queue_repo.environment_support(session=session, seen_after=_seen_after(state))
    downloads = await queue_repo.download_support(session=session, seen_after=_seen_after(state))
    queues = await queue_repo.all_queues(session=session)
    data = [
        _public(
            q,
            live.get(q.name, 0),
            await _count(state, topology.job_queue_name(q.name)),
            support.get(q.name),
            downloads.get(q.name),
        )
        for q in queues
    ]
    return Page(data=data, count=len(data))


def _dead_letter(message: Any) -> DeadLetterPublic:
    headers = message.headers or {}
    deaths = headers.get("x-death") or []
    first = deaths[0] if deaths else {}
    reason = first.get("reason") if isinstance(first, dict) else None
    count = first.get("count") if isinstance(first, dict) else None
    job_id = None
    if message.body:
        try:
            job_id = json.loads(message.body).get("job_id")
        except ValueError:
            job_id = None
    return DeadLetterPublic(
        job_id=job_id,
        event_type=message.type,
        reason=str(reason) if reason is not None else None,
        deliveries=int(count) if count is not None else None,
    )


@router.get("/{name}", responses={404: {"description": "No such queue"}})
async def get_queue(
    name: Name, session: SessionDep, state: StateDep, caller: CallerDep
) -> QueueDetail:
    """One queue: waiting jobs, its dead-letter queue (count and the most recent messages with
    the broker's reason) and, for administrators, its live workers with what their sandboxes
    enforce (host names and isolation gaps are an operator's, not every user's)."""
    queue = found_or_404(await queue_repo.get(session=session, name=name), f"no queue {name!r}")
    broker_queue = topology.job_queue_name(name)
    live = (await _live(session, state)).get(name, 0)
    support = await queue_repo.environment_support(session=session, seen_after=_seen_after(state))
    downloads = await queue_repo.download_support(session=session, seen_after=_seen_after(state))
    dead_queue = topology.dead_letter_queue_name(broker_queue)
    try:
        recent = await state.broker.peek(dead_queue, RECENT_DEAD_LETTERS)
    except Exception:
        recent = []
    return QueueDetail(
        **_public(
            queue, live, await _count(state, broker_queue), support.get(name), downloads.get(name)
        ).model_dump(),
        dead_letters=await _count(state, dead_queue),
        recent_dead_letters=[_dead_letter(m) for m in recent],
        workers=await _workers(session, state, name) if caller.is_admin else None,
    )


async def _workers(session: SessionDep, state: AppState, queue: str) -> list[WorkerPublic]:
    live = await queue_repo.live_workers(
        session=session, queue=queue, seen_after=_seen_after(state)
    )
    return [WorkerPublic.model_validate(worker, from_attributes=True) for worker in live]


async def _group_ids(session: SessionDep, names: list[str]) -> list[str]:
    found = {name: await identity_repo.group_by_name(session=session, name=name) for name in names}
    problems = [
        Problem(field=f"groups.{i}", message=f"no group {name!r}")
        for i, name in enumerate(names)
        if found[name] is None
    ]
    if problems:
        raise InvalidSubmission(f"{len(problems)} problem(s) in the queue", problems)
    return [str(group.id) for group in found.values() if group is not None]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Exists"}})
async def create_queue(body: QueueCreate, session: SessionDep, state: StateDep) -> QueuePublic:
    """Add a queue (administrators only); its broker queue exists at once, so jobs can wait for
    a worker. ``groups`` limits who may submit to it."""
    if await queue_repo.get(session=session, name=body.name) is not None:
        raise Conflict(f"queue {body.name!r} exists already")
    # Every queue is two quorum queues on the broker: their number is bounded.
    limit = state.settings.max_queues
    if await queue_repo.count(session=session) >= limit:
        raise Conflict(f"the testbed has its limit of {limit} queues (THEODOLITE_API_MAX_QUEUES)")
    allowed = None if body.groups is None else await _group_ids(session, body.groups)
    queue = Queue(
        name=body.name,
        description=body.description,
        allowed_group_ids=allowed,
        max_limits=limits_row(body.max_limits),
    )
    await state.broker.declare_job_queue(body.name)
    try:
        await rows.insert(session=session, row=queue)
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"queue {body.name!r} exists already") from exc
    return _public(queue, 0, 0)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such queue"}, 409: {"description": "Jobs use it"}},
)
async def delete_queue(name: Name, session: SessionDep, state: StateDep) -> Response:
    """Remove a queue no job has used (administrators only), with its two broker queues."""
    queue = found_or_404(await queue_repo.get(session=session, name=name), f"no queue {name!r}")
    if used := await queue_repo.job_count(session=session, name=name):
        raise Conflict(f"queue {name!r} has {used} job(s): it stays while their history does")
    await queue_repo.delete(session=session, queue=queue)
    await state.broker.delete_job_queue(name)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
