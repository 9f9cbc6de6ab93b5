from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from theodolite.environments import EnvManager
from theodolite.sandbox.limits import SandboxLimits
from theodolite_api.schemas.common import Name, RequestBody


class JobCreate(RequestBody):
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: Name = "main"
    params: dict[Name, Any] = Field(default_factory=dict)
    queue: Name = "cpu"
    timeout_s: int | None = Field(None, gt=0)
    max_retries: int = Field(0, ge=0, le=20, description="Retries after infrastructure failures.")
    retry_on_failure: bool = Field(
        False, description="Also retry when the entry point itself exits non-zero."
    )
    retry_backoff_s: float = Field(2.0, ge=0, le=3600, description="Base of exponential backoff.")
    callback_url: Name | None = Field(
        None, description="Called (Standard Webhooks) on every status change of this job."
    )
    depends_on: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=100,
        description="Jobs that must succeed first: this one waits (status waiting), and is "
        "skipped if one of them fails, is cancelled or times out.",
    )
    limits: SandboxLimits | None = Field(
        None,
        description="The job's own sandbox limits, within its queue's maxima (sizes as bytes or "
        "text such as '4 GiB'); unset ones are the worker's defaults.",
    )
    env_manager: EnvManager | None = Field(
        None,
        description="As mlflow run --env-manager: local runs in the worker's environment (the "
        "declared one bypassed), uv or virtualenv build python_env, conda builds conda_env; "
        "unset: build what the MLproject declares, refused when the queue cannot.",
    )


class TransitionPublic(BaseModel):
    status: str
    at: datetime
    detail: str | None = None


class ProgressPublic(BaseModel):
    fraction: float | None
    message: str | None
    step: str | None
    at: datetime


class JobPublic(BaseModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: str
    params: dict[str, str]
    queue: str
    timeout_s: int | None
    limits: dict[str, int] | None = None
    env_manager: str | None = None
    depends_on: list[uuid.UUID] = Field(default_factory=list)
    status: str
    plugin_versions: dict[str, Any] | None
    history: list[TransitionPublic]
    attempt: int
    worker_id: str | None
    mlflow_run_id: str | None
    mlflow_run_url: str | None
    exit_code: int | None
    error: str | None
    max_retries: int
    retry_on_failure: bool
    callback_url: str | None
    progress: ProgressPublic | None
    # Queued on a queue that no live worker serves right now: it waits for one.
    waiting_for_worker: bool
    log_tail: list[str]
    created_at: datetime
    updated_at: datetime


class MetricPoint(BaseModel):
    value: float
    step: int
    timestamp: int


class MetricPublic(BaseModel):
    key: str
    latest: MetricPoint
    history: list[MetricPoint]


class ArtifactPublic(BaseModel):
    """One artifact file of the job's run, or one model it logged (``models/<name>``: MLflow 3
    keeps logged models apart from a run's artifacts; load it by its ``uri``)."""

    path: str
    size_bytes: int
    download_url: str | None  # None for a logged model: MLflow serves it by its uri
    # "file" or "model" (a plain string: the client's generated models keep it one).
    kind: str = "file"
    uri: str | None = None  # runs:/RUN/PATH for a file, models:/MODEL_ID for a logged model


class JobCreated(JobPublic):
    """The submission's answer: the job, and once only, its callback's signing secret."""

    webhook_secret: str | None = None
