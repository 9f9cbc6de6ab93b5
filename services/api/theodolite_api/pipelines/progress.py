"""A pipeline's status, from its jobs': ``running`` until every job has ended, then
``succeeded``, ``cancelled`` (when asked) or ``failed``. Each change is announced as
``pipeline.status_changed`` in the transaction that makes it, and ends the MLflow parent run."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.db.status_tables import Pipeline, PipelineJob
from theodolite.db.tables import Job, utcnow
from theodolite.events import PipelineStatusChanged, make_event
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite.web.errors import DomainError
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.repositories import outbox as outbox_repo
from theodolite_api.repositories import pipelines as pipeline_repo

log = logging.getLogger(__name__)

PRODUCER = "api"
RUNNING = "running"
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
MLFLOW_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
# While jobs of a stage differ: the most advanced state shows.
_PROGRESS_ORDER = ("running", "lost", "queued", "waiting")
# Once all have ended: the worst outcome shows.
_ENDED_ORDER = ("failed", "timed_out", "cancelled", "skipped", "succeeded")


def stage_status(statuses: Iterable[str]) -> str:
    """A stage's status from its jobs' (one, or one per sweep point)."""
    found = set(statuses)
    if len(found) == 1:
        return found.pop()
    if all(is_terminal(JobStatus(s)) for s in found):
        return next(s for s in _ENDED_ORDER if s in found)
    return next(s for s in _PROGRESS_ORDER if s in found)


def pipeline_status(pipeline: Pipeline, statuses: Iterable[str]) -> str:
    seen = list(statuses)
    if not all(is_terminal(JobStatus(s)) for s in seen):
        return RUNNING
    if all(s == JobStatus.SUCCEEDED.value for s in seen):
        return "succeeded"
    return "cancelled" if pipeline.cancel_requested_at is not None else "failed"


def stage_statuses(rows: list[tuple[PipelineJob, Job]]) -> dict[str, str]:
    by_stage: dict[str, list[str]] = {}
    for link, job in rows:
        by_stage.setdefault(link.stage, []).append(job.status)
    return {stage: stage_status(statuses) for stage, statuses in sorted(by_stage.items())}


def announce(
    *, session: AsyncSession, pipeline: Pipeline, from_status: str | None, stages: dict[str, str]
) -> None:
    """``pipeline.status_changed`` for the pipeline's status now, in the caller's transaction."""
    event = make_event(
        PipelineStatusChanged(
            pipeline_id=pipeline.id,
            experiment_id=pipeline.experiment_id,
            name=pipeline.name,
            from_status=from_status,
            to_status=pipeline.status,
            at=pipeline.updated_at,
            stages=stages,
        ),
        producer=PRODUCER,
    )
    outbox_repo.add(
        session=session,
        envelope=event,
        exchange=topology.EVENTS_EXCHANGE.name,
        routing_key=topology.PIPELINE_STATUS_CHANGED_ROUTING_KEY,
    )


async def job_ended(*, session: AsyncSession, job_id: uuid.UUID) -> Pipeline | None:
    """After a job ended: the pipeline it belongs to, if this ended it. Does not commit."""
    link = await pipeline_repo.link_of(session=session, job_id=job_id)
    if link is None:
        return None
    # Locked: of two replicas hearing the last two jobs end, one decides, the other sees it.
    pipeline = await pipeline_repo.get(
        session=session, pipeline_id=link.pipeline_id, for_update=True
    )
    if pipeline is None or pipeline.status != RUNNING:
        return None
    rows = await pipeline_repo.jobs_of(session=session, pipeline_id=pipeline.id)
    status = pipeline_status(pipeline, [job.status for _, job in rows])
    if status == RUNNING:
        return None
    pipeline.status = status
    pipeline.updated_at = utcnow()
    announce(session=session, pipeline=pipeline, from_status=RUNNING, stages=stage_statuses(rows))
    return pipeline


async def end_parent_run(mlflow: MlflowReader, pipeline: Pipeline) -> None:
    """Mark the pipeline's MLflow parent run ended as the pipeline did. A failure is logged:
    the pipeline's own status is the record, and MLflow shows the run as still running."""
    if pipeline.mlflow_run_id is None or pipeline.status not in MLFLOW_STATUS:
        return
    end_ms = int(pipeline.updated_at.timestamp() * 1000)
    try:
        await mlflow.end_run(pipeline.mlflow_run_id, MLFLOW_STATUS[pipeline.status], end_ms)
    except DomainError as exc:
        log.warning("pipeline %s: MLflow parent run not ended: %s", pipeline.id, exc)
