"""Table models of "status out" (owned by the api): webhook subscriptions and their deliveries,
and parameter sweeps. Kept apart from ``tables`` so each concern's schema reads on its own."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Identity, Text
from sqlmodel import Field, SQLModel

from theodolite.db.tables import utcnow


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kwargs)


class WebhookSubscription(SQLModel, table=True):
    """An experiment's webhook endpoint and the event types it wants."""

    __tablename__ = "webhook_subscriptions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    experiment_id: uuid.UUID = Field(foreign_key="experiments.id", index=True)
    url: str = Field(sa_type=Text)
    description: str | None = None
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    secret: str  # whsec_..., shown once at creation
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, sa_type=Text)
    # Failed attempts in a row; reaching the configured limit disables the subscription.
    consecutive_failures: int = 0
    # Transitions recorded before the subscription existed (ids up to this) are not sent.
    after_transition_id: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint (a subscription, or a job's own callback). Its id is the
    ``webhook-id`` the receiver sees, the same on every retry and redelivery."""

    __tablename__ = "webhook_deliveries"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # None: the job's own callback_url (signed with the job's webhook_secret).
    subscription_id: uuid.UUID | None = Field(
        default=None, foreign_key="webhook_subscriptions.id", ondelete="CASCADE", index=True
    )
    # The job it is about, or the pipeline (``pipeline.*`` events): exactly one of the two.
    job_id: uuid.UUID | None = Field(default=None, foreign_key="jobs.id", index=True)
    pipeline_id: uuid.UUID | None = Field(default=None, foreign_key="pipelines.id", index=True)
    url: str = Field(sa_type=Text)
    event_type: str
    body: str = Field(sa_type=Text)  # the exact JSON sent (and signed) on every attempt
    # <endpoint>:<event>: the same event never becomes two deliveries to one endpoint.
    dedup_key: str = Field(unique=True)
    status: str = Field(index=True)  # pending | delivered | failed
    attempts: int = 0
    attempts_left: int
    next_attempt_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), index=True
    )
    last_attempt_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _timestamp(index=True)
    delivered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request of a delivery and what came of it."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    delivery_id: uuid.UUID = Field(
        foreign_key="webhook_deliveries.id", ondelete="CASCADE", index=True
    )
    at: datetime = Field(sa_type=DateTime(timezone=True))
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    duration_ms: int


class Sweep(SQLModel, table=True):
    """A parameter grid (x seeds x repeats) submitted as one child job per point."""

    __tablename__ = "sweeps"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    experiment_id: uuid.UUID = Field(foreign_key="experiments.id", index=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)  # its experiment's
    entrypoint_id: uuid.UUID = Field(foreign_key="entrypoints.id")
    entry_point: str
    queue: str
    name: str | None = None
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # the same everywhere
    grid: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # {name: [values]}
    seeds: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    seed_param: str
    repeats: int
    metrics: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _timestamp(index=True)


class SweepJob(SQLModel, table=True):
    """A sweep's child job and the point of the grid it runs."""

    __tablename__ = "sweep_jobs"

    sweep_id: uuid.UUID = Field(foreign_key="sweeps.id", primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True, unique=True)
    position: int  # order in the sweep, 0-based
    # The swept values of this point (grid names and, with seeds, the seed parameter).
    point: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    repeat: int = 0


class Pipeline(SQLModel, table=True):
    """A named DAG of stages, each one job or one per point of a sweep (``pipeline_jobs``)."""

    __tablename__ = "pipelines"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    experiment_id: uuid.UUID = Field(foreign_key="experiments.id", index=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)  # its experiment's
    name: str
    # The stages as submitted (``StageCreate`` each) and the edges, declared and implied.
    stages: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    depends_on: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # {stage: [..]}
    status: str  # running | succeeded | failed | cancelled; set by pipelines.progress
    mlflow_run_id: str | None = None  # the parent run of the stages' runs
    cancel_requested_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = _timestamp(index=True)
    updated_at: datetime = _timestamp()


class PipelineJob(SQLModel, table=True):
    """One job of a pipeline's stage, and the parameter values it waits to have resolved."""

    __tablename__ = "pipeline_jobs"

    pipeline_id: uuid.UUID = Field(foreign_key="pipelines.id", primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True, unique=True)
    stage: str
    point_index: int | None = None  # the sweep point it runs or follows; None: the only job
    point: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # swept values
    # Parameters whose values reference upstream stages, resolved when the job is queued.
    templates: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
