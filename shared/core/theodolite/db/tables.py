"""The api's table models: experiments, entry points, queues, workers, jobs and their history, the
outbox, announced plugins. Each table has one owning service: the api's status-out tables are in
``status_tables``, the plugin registry's in ``registry_tables``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kwargs)


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, index=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)  # the owner
    description: str | None = None
    mlflow_experiment_id: str
    created_at: datetime = timestamp_field()


class EntryPointArchive(SQLModel, table=True):
    __tablename__ = "entrypoints"
    # The same bytes uploaded by two groups are two entry points (over one stored object).
    __table_args__ = (UniqueConstraint("group_id", "sha256"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)  # the owner
    sha256: str = Field(index=True)
    filename: str | None = None
    size_bytes: int
    archive_format: str
    project_name: str | None = None
    # graph.yaml as uploaded, when the archive has one; validated against the current task
    # catalogue whenever it is shown or used, since plugins come and go.
    graph_text: str | None = Field(default=None, sa_type=Text)
    # {entry point name: {"command": ..., "parameters": {name: {"type", "default"}}}}; JSON, not
    # JSONB, because JSON keeps the declaration order that users see.
    entry_points: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The environment its MLproject declares (``theodolite.environments.DeclaredEnvironment``);
    # None for archives stored before environments were read.
    environment: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = timestamp_field()


class Queue(SQLModel, table=True):
    __tablename__ = "queues"

    name: str = Field(primary_key=True)
    description: str | None = None
    # The groups that may submit to it (their ids); None: every group.
    allowed_group_ids: list[str] | None = Field(default=None, sa_column=Column(JSON))
    # The most a job on it may ask for (``theodolite.sandbox.SandboxLimits`` fields); None: no
    # maxima here (the workers' own settings still bound every job).
    max_limits: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = timestamp_field()


class Worker(SQLModel, table=True):
    __tablename__ = "workers"

    id: str = Field(primary_key=True)
    queue: str = Field(index=True)
    hostname: str
    pid: int
    slots: int
    busy: int
    stopping: bool = False
    started_at: datetime = Field(sa_type=DateTime(timezone=True))
    last_seen_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    # What its sandboxes enforce on its host, as its heartbeat says (``Isolation.enforced``).
    isolation: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What it can build (``theodolite.environments.EnvironmentSupport``), as its heartbeat says.
    environments: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What it downloads for jobs (``theodolite.downloads.DownloadSupport``), as its heartbeat says.
    downloads: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    experiment_id: uuid.UUID = Field(foreign_key="experiments.id", index=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)  # its experiment's
    entrypoint_id: uuid.UUID = Field(foreign_key="entrypoints.id")
    entry_point: str
    params: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    queue: str = Field(foreign_key="queues.name")
    timeout_s: int | None = None
    # Written only by the api's jobs/transitions.py; record_submission sets the first status.
    status: str = Field(default="", index=True)
    attempt: int = 0
    last_seq: int = -1
    worker_id: str | None = None
    mlflow_run_id: str | None = None
    exit_code: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    # The plugin versions resolved at submission: {name: {"version", "source", ...}}.
    plugin_versions: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    # The job's own sandbox limits (``SandboxLimits`` fields), within its queue's maxima.
    limits: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Tags its MLflow runs get besides the worker's own (a pipeline stage: its parent run).
    run_tags: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # ``mlflow run --env-manager``: local, uv, virtualenv, conda; None: what the MLproject says.
    env_manager: str | None = None
    # Other MLflow experiments of its group that its path values read (the job message's
    # ``readable_experiments``); None: its own only.
    readable_experiments: list[str] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    # The latest job.progress: {"fraction", "message", "step", "at"}.
    progress: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Reliability: retries of infrastructure failures (and of a failing script when asked).
    max_retries: int = 0
    retry_on_failure: bool = False
    retry_backoff_s: float = 2.0
    next_attempt_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    cancel_requested_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # POST /jobs with an Idempotency-Key: the same key and body give the same job.
    idempotency_key: str | None = Field(default=None, unique=True)
    request_sha256: str | None = None
    # Status out: a per-job callback (Standard Webhooks), its whsec_ secret shown once.
    callback_url: str | None = Field(default=None, sa_type=Text)
    webhook_secret: str | None = None
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = timestamp_field()


class JobTransition(SQLModel, table=True):
    __tablename__ = "job_transitions"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    status: str
    at: datetime = Field(sa_type=DateTime(timezone=True))
    detail: str | None = Field(default=None, sa_type=Text)
    # The (attempt, seq) of the event that caused it: orders a job's events for replay.
    attempt: int = 0
    seq: int = 0


class JobDependency(SQLModel, table=True):
    """``job_id`` waits for ``depends_on_id`` to succeed (``POST /jobs`` with ``depends_on``)."""

    __tablename__ = "job_dependencies"

    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True)
    depends_on_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True, index=True)


class JobLogChunk(SQLModel, table=True):
    __tablename__ = "job_log_chunks"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    attempt: int
    seq: int
    lines: str = Field(sa_type=Text)  # newline-joined
    line_count: int


class OutboxMessage(SQLModel, table=True):
    """An event committed with the change that caused it, published later by the relay."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    event_id: uuid.UUID = Field(unique=True)
    event_type: str
    exchange: str
    routing_key: str
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = timestamp_field()
    published_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)


class AnnouncedPlugin(SQLModel, table=True):
    """A plugin version installed where a worker runs jobs, as that worker announced it."""

    __tablename__ = "announced_plugins"

    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    module: str
    tasks: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    worker_id: str
    queue: str
    announced_at: datetime = Field(sa_type=DateTime(timezone=True))
