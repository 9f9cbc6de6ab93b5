"""What a delivery carries: ``{"type", "timestamp", "data"}`` as Standard Webhooks suggests,
serialized once, so every attempt sends (and signs) the same bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from theodolite.db.status_tables import Pipeline
from theodolite.db.tables import Job, JobTransition
from theodolite.events import Envelope, JobLog, JobProgress, PipelineStatusChanged


def _body(event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    payload = {"type": event_type, "timestamp": timestamp.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), default=str)


def status_event_type(status: str) -> str:
    return f"job.{status}"


def status_body(job: Job, transition: JobTransition) -> str:
    return _body(
        status_event_type(transition.status),
        transition.at,
        {
            "job_id": str(job.id),
            "experiment_id": str(job.experiment_id),
            "status": transition.status,
            "detail": transition.detail,
            "attempt": transition.attempt,
            "seq": transition.seq,
            "at": transition.at.isoformat(),
            "queue": job.queue,
            "entry_point": job.entry_point,
            "mlflow_run_id": job.mlflow_run_id,
            "exit_code": job.exit_code,
            "error": job.error,
        },
    )


def live_body(job: Job, envelope: Envelope, payload: JobProgress | JobLog) -> str:
    return _body(
        envelope.type.value,
        envelope.occurred_at,
        {
            "job_id": str(job.id),
            "experiment_id": str(job.experiment_id),
            "attempt": envelope.attempt,
            "seq": envelope.seq,
            **payload.model_dump(mode="json"),
        },
    )


def pipeline_body(pipeline: Pipeline, payload: PipelineStatusChanged) -> str:
    return _body(
        f"pipeline.{payload.to_status}",
        payload.at,
        {
            "pipeline_id": str(pipeline.id),
            "experiment_id": str(pipeline.experiment_id),
            "name": pipeline.name,
            "status": payload.to_status,
            "from_status": payload.from_status,
            "stages": payload.stages,
            "at": payload.at.isoformat(),
            "mlflow_run_id": pipeline.mlflow_run_id,
        },
    )
