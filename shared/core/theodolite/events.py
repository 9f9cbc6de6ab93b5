"""Event envelope and one typed payload model per event type. JSON on the wire, never pickle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from theodolite.downloads import DownloadSupport
from theodolite.environments import EnvironmentSupport
from theodolite.observability.tracing import current_trace
from theodolite.sdk.discovery import PluginSpec
from theodolite.sdk.protocol import PROGRESS_LINE_PREFIX


class EventType(StrEnum):
    JOB_SUBMITTED = "job.submitted"
    JOB_STARTED = "job.started"
    JOB_LOG = "job.log"
    JOB_PROGRESS = "job.progress"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_TIMED_OUT = "job.timed_out"
    JOB_RELEASED = "job.released"
    JOB_CANCEL = "job.cancel"
    JOB_STATUS_CHANGED = "job.status_changed"
    PIPELINE_STATUS_CHANGED = "pipeline.status_changed"
    WORKER_HEARTBEAT = "worker.heartbeat"
    WORKER_PLUGINS = "worker.plugins"
    PLUGIN_PUBLISHED = "plugin.published"
    PLUGIN_YANKED = "plugin.yanked"


class PluginPin(BaseModel):
    """One plugin version a job uses, fixed at submission."""

    version: str
    source: str  # "registry": fetch wheel_key; "installed": the worker's own environment
    wheel_key: str | None = None
    wheel_sha256: str | None = None


class JobSubmitted(BaseModel):
    """A job to run: everything a worker needs, so it never has to ask the api."""

    experiment_id: uuid.UUID
    mlflow_experiment_id: str
    entrypoint_id: uuid.UUID
    archive_sha256: str
    entry_point: str
    params: dict[str, str]
    queue: str
    timeout_s: int | None = None
    plugins: dict[str, PluginPin] = Field(default_factory=dict)
    # The job's own sandbox limits (``theodolite.sandbox.SandboxLimits`` fields), already within
    # its queue's maxima; the worker bounds them by its own maxima too. None: the worker's defaults.
    limits: dict[str, int] | None = None
    # Tags its MLflow run gets besides the worker's own: a pipeline stage's parent run
    # (``mlflow.parentRunId``), pipeline and stage names.
    run_tags: dict[str, str] = Field(default_factory=dict)
    # ``mlflow run --env-manager`` (local, uv, virtualenv, conda); None: build what the MLproject
    # declares.
    env_manager: str | None = None
    # The MLflow experiments besides its own whose runs and artifacts the job may read through
    # its tracking proxy: those of its group that its runs:/ and mlflow-artifacts:/ path values
    # name, checked at submission.
    readable_experiments: list[str] = Field(default_factory=list)


class JobStarted(BaseModel):
    worker_id: str
    mlflow_run_id: str


class JobLog(BaseModel):
    lines: list[str]


class JobProgress(BaseModel):
    """How far a job has come, reported by its code (``theodolite.sdk`` progress reporter)."""

    fraction: float | None = Field(None, ge=0.0, le=1.0)
    message: str | None = None
    step: str | None = None


# Re-exported: the progress line protocol lives with the SDK that writes it.
__all__ = ["PROGRESS_LINE_PREFIX"]


class JobSucceeded(BaseModel):
    mlflow_run_id: str
    exit_code: int = 0
    log_tail: list[str] = Field(default_factory=list)


class JobFailed(BaseModel):
    reason: str
    # The testbed failed (archive unusable, worker error), not the entry point: retried while
    # the job's retry budget lasts, like a lost job.
    infrastructure: bool = False
    mlflow_run_id: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = Field(default_factory=list)


class JobCancelled(BaseModel):
    """The worker stopped the job's processes after a cancel request."""

    mlflow_run_id: str | None = None
    log_tail: list[str] = Field(default_factory=list)


class JobTimedOut(BaseModel):
    """The job ran past its timeout_s and its processes were stopped."""

    timeout_s: int
    mlflow_run_id: str | None = None
    log_tail: list[str] = Field(default_factory=list)


class JobReleased(BaseModel):
    """A worker shutting down handed the job back, unfinished: run it again elsewhere."""

    reason: str
    mlflow_run_id: str | None = None


class JobCancel(BaseModel):
    """Control: stop this job wherever it runs (api -> every worker)."""


class JobStatusChanged(BaseModel):
    """The api recorded a transition (api -> status out: streams, webhooks, sweeps).

    Written to the outbox in the transaction that changes the job's status, by the one module
    that changes it; ``transition_id`` is the row of the job's history it wrote.
    """

    experiment_id: uuid.UUID
    transition_id: int
    from_status: str | None  # None for the submission's ``queued``
    to_status: str
    at: datetime
    reason: str | None = None


class PipelineStatusChanged(BaseModel):
    """A pipeline started or ended (api -> status out: streams, webhooks). Written to the outbox
    in the transaction that changed the pipeline's status."""

    pipeline_id: uuid.UUID
    experiment_id: uuid.UUID
    name: str
    from_status: str | None  # None when it was created
    to_status: str
    at: datetime
    # Each stage's status when it changed: {stage: status}.
    stages: dict[str, str] = Field(default_factory=dict)


class WorkerHeartbeat(BaseModel):
    worker_id: str
    queue: str
    hostname: str
    pid: int
    slots: int
    busy: int
    started_at: datetime
    stopping: bool = False
    running_jobs: list[uuid.UUID] = Field(default_factory=list)
    # What this worker's job sandboxes enforce on its host (kind -> how, or "no: why"), as
    # ``theodolite.sandbox.probe.Isolation.enforced`` says; None from workers that predate it.
    isolation: dict[str, str] | None = None
    # What it can build for a declared environment; None from workers that predate it.
    environments: EnvironmentSupport | None = None
    # The remote paths it downloads for jobs; None from workers that predate it.
    downloads: DownloadSupport | None = None


class WorkerPlugins(BaseModel):
    """The plugins installed where a worker runs jobs, with their task contracts."""

    worker_id: str
    queue: str
    plugins: list[PluginSpec]
    errors: dict[str, str] = Field(default_factory=dict)  # plugin -> why it did not load


class PluginPublished(BaseModel):
    name: str
    version: str
    sha256: str
    wheel_key: str
    wheel_sha256: str


class PluginYanked(BaseModel):
    name: str
    version: str


PAYLOAD_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.JOB_SUBMITTED: JobSubmitted,
    EventType.JOB_STARTED: JobStarted,
    EventType.JOB_LOG: JobLog,
    EventType.JOB_PROGRESS: JobProgress,
    EventType.JOB_SUCCEEDED: JobSucceeded,
    EventType.JOB_FAILED: JobFailed,
    EventType.JOB_CANCELLED: JobCancelled,
    EventType.JOB_TIMED_OUT: JobTimedOut,
    EventType.JOB_RELEASED: JobReleased,
    EventType.JOB_CANCEL: JobCancel,
    EventType.JOB_STATUS_CHANGED: JobStatusChanged,
    EventType.PIPELINE_STATUS_CHANGED: PipelineStatusChanged,
    EventType.WORKER_HEARTBEAT: WorkerHeartbeat,
    EventType.WORKER_PLUGINS: WorkerPlugins,
    EventType.PLUGIN_PUBLISHED: PluginPublished,
    EventType.PLUGIN_YANKED: PluginYanked,
}
PAYLOAD_TYPES: dict[type[BaseModel], EventType] = {m: t for t, m in PAYLOAD_MODELS.items()}


class Envelope(BaseModel):
    """What travels: identity, ordering and provenance around one typed payload.

    ``(attempt, seq)`` orders one job's events: ``seq`` grows within an attempt, and a retry is a
    new attempt, so consumers can drop stale and duplicate events.
    """

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    job_id: uuid.UUID | None = None
    attempt: int = 0
    seq: int = 0
    producer: str
    payload: dict[str, Any]
    # The W3C trace context (traceparent, tracestate) of the work that made it: one trace follows
    # a job across services. Empty when tracing is off; messages from before it decode as empty.
    # Part of the signed body, so a forger cannot graft its event into another's trace.
    trace: dict[str, str] = Field(default_factory=dict)

    def typed_payload(self) -> BaseModel:
        return PAYLOAD_MODELS[self.type].model_validate(self.payload)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class UndecodableEvent(ValueError):
    """A message that is not a valid envelope of a known type and version."""


SUPPORTED_VERSION = 1


def make_event(
    payload: BaseModel,
    *,
    producer: str,
    job_id: uuid.UUID | None = None,
    attempt: int = 0,
    seq: int = 0,
) -> Envelope:
    """An envelope around ``payload``, carrying the current span's trace context."""
    return Envelope(
        type=PAYLOAD_TYPES[type(payload)],
        job_id=job_id,
        attempt=attempt,
        seq=seq,
        producer=producer,
        payload=payload.model_dump(mode="json"),
        trace=current_trace(),
    )


def decode_event(body: bytes) -> tuple[Envelope, BaseModel]:
    """Parse and check a message body; raise UndecodableEvent naming what is wrong."""
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise UndecodableEvent(f"not a Theodolite event envelope: {exc.errors()[:3]}") from exc
    if envelope.version != SUPPORTED_VERSION:
        raise UndecodableEvent(f"unsupported version {envelope.version} of {envelope.type}")
    try:
        return envelope, envelope.typed_payload()
    except ValidationError as exc:
        raise UndecodableEvent(f"bad {envelope.type} payload: {exc.errors()[:3]}") from exc
