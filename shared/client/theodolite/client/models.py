"""What the api answers, as typed models. Unknown fields are kept (a newer api may add some).

Each model also reads like the dict the api sent (``job["status"]``, JSON values), so scripts
written against plain JSON keep working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# The statuses a job never leaves (the server's lifecycle says the same; the client imports no
# server code).
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        return self.model_dump(mode="json")[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.model_dump(mode="json").get(key, default)


class Page(ApiModel, Generic[T]):
    data: list[T]
    count: int  # the total of matches, not the length of this page


class Problem(ApiModel):
    field: str
    message: str


class Experiment(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None = None
    mlflow_experiment_id: str
    mlflow_url: str
    created_at: datetime


class Parameter(ApiModel):
    name: str
    type: str
    default: str | None = None
    required: bool


class EntryPointDeclaration(ApiModel):
    name: str
    command: str
    parameters: list[Parameter]


class Graph(ApiModel):
    valid: bool
    problems: list[Problem]
    spec: dict[str, Any] | None = None


class EntryPoint(ApiModel):
    """An uploaded archive and the entry points it declares."""

    id: uuid.UUID
    sha256: str
    filename: str | None = None
    size_bytes: int
    archive_format: str
    project_name: str | None = None
    entry_points: list[EntryPointDeclaration]
    graph: Graph | None = None
    created_at: datetime


class Queue(ApiModel):
    name: str
    description: str | None = None
    live_workers: int
    waiting_jobs: int | None = None
    waiting_for_worker: bool = False
    created_at: datetime


class Task(ApiModel):
    reference: str
    plugin: str
    version: str
    description: str | None = None
    inputs: dict[str, Any]
    output: dict[str, Any]


class PluginSummary(ApiModel):
    name: str
    latest_version: str | None = None
    versions: list[str]


class PluginVersion(ApiModel):
    name: str
    version: str
    sha256: str
    status: str
    module: str
    published_at: datetime
    tasks: dict[str, Any] = Field(default_factory=dict)


class Transition(ApiModel):
    status: str
    at: datetime
    detail: str | None = None


class Progress(ApiModel):
    fraction: float | None = None
    message: str | None = None
    step: str | None = None
    at: datetime


class JobData(ApiModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: str
    params: dict[str, str]
    queue: str
    timeout_s: int | None = None
    status: str
    plugin_versions: dict[str, Any] | None = None
    history: list[Transition] = Field(default_factory=list)
    attempt: int = 0
    worker_id: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    exit_code: int | None = None
    error: str | None = None
    callback_url: str | None = None
    progress: Progress | None = None
    log_tail: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    # Only in the answer to a submission with a callback_url: its signing secret, shown once.
    webhook_secret: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class MetricPoint(ApiModel):
    value: float
    step: int
    timestamp: int


class Metric(ApiModel):
    key: str
    latest: MetricPoint
    history: list[MetricPoint]


class Artifact(ApiModel):
    path: str
    size_bytes: int
    download_url: str


class JobEvent(ApiModel):
    """One server-sent event: ``event`` is status, log, progress or end."""

    id: str | None = None
    event: str
    job_id: uuid.UUID | None = None
    attempt: int | None = None
    seq: int | None = None
    status: str | None = None
    at: datetime | None = None
    detail: str | None = None
    lines: list[str] = Field(default_factory=list)
    fraction: float | None = None
    message: str | None = None
    step: str | None = None

    @property
    def is_terminal(self) -> bool:
        """A status event that ends the job (or the end of a job's stream)."""
        return self.event == "end" or (self.event == "status" and self.status in TERMINAL_STATUSES)


class Webhook(ApiModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    url: str
    description: str | None = None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str  # shown this once


class DeliveryAttempt(ApiModel):
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class Delivery(ApiModel):
    id: uuid.UUID
    webhook_id: str
    subscription_id: uuid.UUID | None = None
    job_id: uuid.UUID
    url: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    payload: dict[str, Any]
    attempt_log: list[DeliveryAttempt] = Field(default_factory=list)


class MetricSummary(ApiModel):
    mean: float
    std: float
    min: float
    max: float
    n: int


class SweepPoint(ApiModel):
    position: int
    values: dict[str, Any]
    repeat: int
    job_id: uuid.UUID
    status: str
    metrics: dict[str, float]


class SweepRow(ApiModel):
    values: dict[str, Any]
    jobs: int
    statuses: dict[str, int]
    metrics: dict[str, MetricSummary]


class SweepSummary(ApiModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: str
    name: str | None = None
    queue: str
    params: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[Any]
    seed_param: str
    repeats: int
    metrics: list[str]
    status: str
    finished: bool
    counts: dict[str, int]
    created_at: datetime


class Sweep(SweepSummary):
    points: list[SweepPoint]
    table: list[SweepRow]
    figure_url: str | None = None


class RegisteredModel(ApiModel):
    name: str
    description: str | None = None
    latest_version: str | None = None
    mlflow_url: str


class ModelVersion(ApiModel):
    name: str
    version: str
    uri: str
    run_id: str | None = None
    status: str | None = None
