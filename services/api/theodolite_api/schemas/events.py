"""The ``data`` of each server-sent event type (the SSE ``event:`` field names the type)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class StatusEvent(BaseModel):
    """``event: status``: a transition the api recorded."""

    job_id: uuid.UUID
    attempt: int
    seq: int
    status: str
    at: datetime
    detail: str | None = None


class LogEvent(BaseModel):
    """``event: log``: output lines of a job, as recorded (job streams only)."""

    job_id: uuid.UUID
    attempt: int
    seq: int
    lines: list[str]


class ProgressEvent(BaseModel):
    """``event: progress``: how far a job has come. Live only: not replayed on reconnect."""

    job_id: uuid.UUID
    attempt: int
    seq: int
    fraction: float | None = None
    message: str | None = None
    step: str | None = None
    at: datetime


class PipelineEvent(BaseModel):
    """``event: pipeline``: a pipeline of the experiment started or ended (experiment streams).
    Live only: not replayed on reconnect (``GET /pipelines/{id}`` has the status)."""

    pipeline_id: uuid.UUID
    name: str
    from_status: str | None = None
    status: str
    stages: dict[str, str]
    at: datetime


class EndEvent(BaseModel):
    """``event: end``: the job has ended and everything it recorded was sent (job streams)."""

    job_id: uuid.UUID
    status: str


SSE_DESCRIPTION = (
    "A `text/event-stream`. Event types (the SSE `event:` field): `status`, `log`, `progress`, "
    "on an experiment stream `pipeline` (a pipeline started or ended; live only), and, on a job "
    "stream, `end` after the terminal status; `data` is JSON "
    "(schemas StatusEvent, LogEvent, ProgressEvent, PipelineEvent, EndEvent). Reconnect with "
    "the `Last-Event-ID` header (or `last_event_id` query parameter) to continue after the "
    "last event received: nothing recorded is missed or repeated."
)
