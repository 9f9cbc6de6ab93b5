from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from theodolite.lifecycle import JobStatus
from theodolite_api.schemas.common import Name, RequestBody, Text

# A status change is named after the status the job entered: job.running, job.succeeded, ...
STATUS_EVENT_TYPES = tuple(f"job.{status.value}" for status in JobStatus)
# A pipeline of the experiment started (running) or ended.
PIPELINE_EVENT_TYPES = tuple(
    f"pipeline.{status}" for status in ("running", "succeeded", "failed", "cancelled")
)
# Sent as they happen, never replayed: opt in, they can be many.
LIVE_EVENT_TYPES = ("job.progress", "job.log")
EVENT_TYPES = STATUS_EVENT_TYPES + PIPELINE_EVENT_TYPES + LIVE_EVENT_TYPES


class WebhookCreate(RequestBody):
    url: Name = Field(description="Where deliveries are POSTed (http or https).")
    event_types: list[Name] = Field(
        default_factory=lambda: list(STATUS_EVENT_TYPES + PIPELINE_EVENT_TYPES),
        description=f"What to send, of: {', '.join(EVENT_TYPES)}. Default: every status change "
        "(of jobs and pipelines).",
    )
    description: Text | None = Field(None, max_length=1000)


class WebhookUpdate(RequestBody):
    url: Name | None = None
    event_types: list[Name] | None = None
    description: Text | None = Field(None, max_length=1000)
    enabled: bool | None = Field(
        None, description="true re-enables a disabled subscription and resets its failure count."
    )


class WebhookPublic(BaseModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    """The new subscription and, this once only, its signing secret."""

    secret: str


class DeliveryAttemptPublic(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    id: uuid.UUID
    webhook_id: str  # the webhook-id header: the same on every attempt
    subscription_id: uuid.UUID | None  # None: the job's own callback
    job_id: uuid.UUID | None  # None: a pipeline's event (pipeline_id)
    pipeline_id: uuid.UUID | None = None
    url: str
    event_type: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[DeliveryAttemptPublic]
