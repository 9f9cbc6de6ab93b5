# Generated from openapi.json by shared/client/scripts/generate_client.py: do not edit.
# Regenerate with `make client-models` after a change to the api's schemas.

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from theodolite.client._base import ApiModel


class ArtifactPublic(ApiModel):
    """
    One artifact file of the job's run, or one model it logged (``models/<name>``: MLflow 3
    keeps logged models apart from a run's artifacts; load it by its ``uri``).
    """

    path: str
    size_bytes: int = 0
    download_url: str | None = None
    kind: str = "file"
    uri: str | None = None


class DeadLetterPublic(ApiModel):
    job_id: str | None = None
    event_type: str | None = None
    reason: str | None = None
    deliveries: int | None = None


class DeliveryAttemptPublic(ApiModel):
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


class DeliveryPublic(ApiModel):
    id: UUID
    webhook_id: str
    subscription_id: UUID | None = None
    job_id: UUID | None = None
    pipeline_id: UUID | None = None
    url: str
    event_type: str
    status: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    payload: dict[str, Any] = {}
    attempt_log: list[DeliveryAttemptPublic] = Field([], validate_default=True)


class EnvironmentPublic(ApiModel):
    """The environment an MLproject declares (``theodolite.environments.DeclaredEnvironment``)."""

    kind: str
    setting: str | None = None
    file: str | None = None
    sha256: str | None = None
    python: str | None = None
    build_dependencies: list[str] = []
    dependencies: list[str] = []
    image: str | None = None


class ExperimentPublic(ApiModel):
    id: UUID
    name: str
    group_id: UUID
    description: str | None = None
    mlflow_experiment_id: str
    mlflow_url: str
    created_at: datetime


class GroupPublic(ApiModel):
    id: UUID
    name: str
    description: str | None = None
    created_at: datetime


class JobStatus(StrEnum):
    waiting = "waiting"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"
    lost = "lost"
    skipped = "skipped"


class KeyPublic(ApiModel):
    id: UUID
    prefix: str
    user_id: UUID
    name: str
    scopes: list[str] = []
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class MetricPoint(ApiModel):
    value: float
    step: int = 0
    timestamp: int = 0


class MetricPublic(ApiModel):
    key: str
    latest: MetricPoint
    history: list[MetricPoint] = Field([], validate_default=True)


class MetricSummary(ApiModel):
    mean: float
    std: float
    min: float
    max: float
    n: int = 0


class ModelPublic(ApiModel):
    name: str
    description: str | None = None
    latest_version: str | None = None
    created_at_ms: int | None = None
    mlflow_url: str


class ModelVersionPublic(ApiModel):
    name: str
    version: str
    uri: str
    run_id: str | None = None
    source: str | None = None
    status: str | None = None
    created_at_ms: int | None = None


class ParameterPublic(ApiModel):
    name: str
    type: str
    default: str | None = None
    required: bool = False


class PipelineSummary(ApiModel):
    id: UUID
    experiment_id: UUID
    name: str
    status: str
    finished: bool = False
    mlflow_run_id: str | None = None
    created_at: datetime
    updated_at: datetime


class Problem(ApiModel):
    field: str
    message: str


class ProgressPublic(ApiModel):
    fraction: float | None = None
    message: str | None = None
    step: str | None = None
    at: datetime


class QueueDownloads(ApiModel):
    """The remote path values every live worker of the queue downloads for its jobs."""

    s3_buckets: list[str] = []
    http: bool = False


class QueueEnvironments(ApiModel):
    """What every live worker of the queue builds for an MLproject's declared environment."""

    kinds: list[str] = []
    env_managers: list[str] = []
    pythons: list[str] = []
    uv: str | None = None
    conda: str | None = None


class QueuePublic(ApiModel):
    name: str
    description: str | None = None
    live_workers: int = 0
    waiting_jobs: int | None = None
    waiting_for_worker: bool = False
    max_limits: dict[str, int] | None = None
    environments: QueueEnvironments | None = None
    downloads: QueueDownloads | None = None
    created_at: datetime


class Role(StrEnum):
    """
    A user's role in a group.
    """

    admin = "admin"
    member = "member"
    viewer = "viewer"


class Scope(StrEnum):
    """
    What a key may be used for (on top of the user's roles).
    """

    read = "read"
    submit = "submit"
    publish_plugins = "publish-plugins"
    admin = "admin"


class StageJobPublic(ApiModel):
    """One job of a stage: the only one, or that of one sweep point."""

    job_id: UUID
    status: str
    point: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    error: str | None = None


class StagePublic(ApiModel):
    name: str
    status: str
    depends_on: list[str] = []
    jobs: list[StageJobPublic] = Field([], validate_default=True)


class SweepPointPublic(ApiModel):
    """One child job: the swept values it ran with, its status and its chosen metrics."""

    position: int = 0
    values: dict[str, Any] = {}
    repeat: int = 0
    job_id: UUID
    status: str
    metrics: dict[str, float] = {}


class SweepRowPublic(ApiModel):
    """One combination of grid values, summarized over its seeds and repeats."""

    values: dict[str, Any] = {}
    jobs: int = 0
    statuses: dict[str, int] = {}
    metrics: dict[str, MetricSummary] = Field({}, validate_default=True)


class SweepSummary(ApiModel):
    id: UUID
    experiment_id: UUID
    entrypoint_id: UUID
    entry_point: str
    name: str | None = None
    queue: str
    params: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    seeds: list[Any] = []
    seed_param: str
    repeats: int = 0
    metrics: list[str] = []
    status: str
    finished: bool = False
    counts: dict[str, int] = {}
    created_at: datetime


class TaskPublic(ApiModel):
    reference: str
    plugin: str
    version: str
    description: str | None = None
    retries: int = 0
    inputs: dict[str, Any] = {}
    output: dict[str, Any] = {}


class TransitionPublic(ApiModel):
    status: str
    at: datetime
    detail: str | None = None


class UserPublic(ApiModel):
    id: UUID
    name: str
    is_admin: bool = False
    disabled: bool = False
    oidc_subject: str | None = None
    created_at: datetime


class WebhookPublic(ApiModel):
    id: UUID
    experiment_id: UUID
    url: str
    description: str | None = None
    event_types: list[str] = []
    enabled: bool = False
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    created_at: datetime
    updated_at: datetime


class WorkerPublic(ApiModel):
    id: str
    hostname: str
    slots: int = 0
    busy: int = 0
    stopping: bool = False
    started_at: datetime
    last_seen_at: datetime
    isolation: dict[str, str] | None = None


class EntryPointPublic(ApiModel):
    name: str
    command: str
    parameters: list[ParameterPublic] = Field([], validate_default=True)
    warnings: list[str] = []


class GraphPublic(ApiModel):
    """graph.yaml of a graph entry point, checked against the tasks workers have now."""

    valid: bool = False
    problems: list[Problem] = Field([], validate_default=True)
    spec: dict[str, Any] | None = None


class JobPublic(ApiModel):
    id: UUID
    experiment_id: UUID
    entrypoint_id: UUID
    entry_point: str
    params: dict[str, str] = {}
    queue: str
    timeout_s: int | None = None
    limits: dict[str, int] | None = None
    env_manager: str | None = None
    depends_on: list[UUID] | None = None
    status: str
    plugin_versions: dict[str, Any] | None = None
    history: list[TransitionPublic] = Field([], validate_default=True)
    attempt: int = 0
    worker_id: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    exit_code: int | None = None
    error: str | None = None
    max_retries: int = 0
    retry_on_failure: bool = False
    callback_url: str | None = None
    progress: ProgressPublic | None = None
    waiting_for_worker: bool = False
    log_tail: list[str] = []
    created_at: datetime
    updated_at: datetime


class KeyCreated(KeyPublic):
    key: str = Field(..., description="The key itself: shown this once, stored only as a hash.")


class MemberPublic(ApiModel):
    user: str
    group: str
    role: Role


class PipelinePublic(PipelineSummary):
    mlflow_run_url: str | None = None
    stages: list[StagePublic] = Field([], validate_default=True)


class QueueDetail(QueuePublic):
    dead_letters: int | None = None
    recent_dead_letters: list[DeadLetterPublic] = Field([], validate_default=True)
    workers: list[WorkerPublic] | None = None


class SweepPublic(SweepSummary):
    points: list[SweepPointPublic] = Field([], validate_default=True)
    table: list[SweepRowPublic] = Field([], validate_default=True)
    figure_url: str | None = None


class WebhookCreated(WebhookPublic):
    """The new subscription and, this once only, its signing secret."""

    secret: str


class CallerPublic(ApiModel):
    user: str
    is_admin: bool = False
    scopes: list[Scope] = []
    groups: list[MemberPublic] = Field([], validate_default=True)


class EntryPointArchivePublic(ApiModel):
    id: UUID
    group_id: UUID
    sha256: str
    filename: str | None = None
    size_bytes: int = 0
    archive_format: str
    project_name: str | None = None
    entry_points: list[EntryPointPublic] = Field([], validate_default=True)
    runnable_files: list[str] = []
    graph: GraphPublic | None = None
    environment: EnvironmentPublic | None = None
    created_at: datetime


class EntryPointValidation(ApiModel):
    """What an upload would say, without storing anything."""

    valid: bool = False
    problems: list[Problem] = Field([], validate_default=True)
    sha256: str
    entry_points: list[EntryPointPublic] = Field([], validate_default=True)
    runnable_files: list[str] = []
    graph: GraphPublic | None = None
    environment: EnvironmentPublic | None = None


class JobCreated(JobPublic):
    """The submission's answer: the job, and once only, its callback's signing secret."""

    webhook_secret: str | None = None
