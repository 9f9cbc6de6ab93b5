from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from theodolite.sandbox.limits import SandboxLimits
from theodolite.topology import QUEUE_NAME_PATTERN
from theodolite_api.schemas.common import Name, RequestBody, Text


class QueueCreate(RequestBody):
    name: Name = Field(
        pattern=QUEUE_NAME_PATTERN, description="Lower-case letters, digits, - and _."
    )
    description: Text | None = Field(None, max_length=1000)
    groups: list[Name] | None = Field(
        None, max_length=100, description="Groups that may submit to it; unset: every group."
    )
    max_limits: SandboxLimits | None = Field(
        None, description="The most a job on it may ask for in its own limits."
    )


class QueueEnvironments(BaseModel):
    """What every live worker of the queue builds for an MLproject's declared environment."""

    kinds: list[str]  # of none, python, conda, docker, kubernetes
    env_managers: list[str]  # what a submission's env_manager may choose here
    pythons: list[str]  # Python versions a python_env may ask for
    uv: str | None
    conda: str | None


class QueueDownloads(BaseModel):
    """The remote path values every live worker of the queue downloads for its jobs."""

    s3_buckets: list[str]  # each a bucket or bucket/prefix
    http: bool  # http(s):// URLs (public addresses, and hosts its operator allowed)


class QueuePublic(BaseModel):
    name: str
    description: str | None
    live_workers: int
    waiting_jobs: int | None  # messages ready in the broker; None when it cannot be asked
    # Jobs wait and no live worker serves the queue: they will not start until one comes.
    waiting_for_worker: bool
    max_limits: dict[str, int] | None = None
    # None until a live worker announced what it builds.
    environments: QueueEnvironments | None = None
    downloads: QueueDownloads | None = None  # None until a live worker announced them
    created_at: datetime


class DeadLetterPublic(BaseModel):
    job_id: str | None
    event_type: str | None
    reason: str | None  # from the broker's x-death header: rejected, delivery_limit, ...
    deliveries: int | None


class WorkerPublic(BaseModel):
    id: str
    hostname: str
    slots: int
    busy: int
    stopping: bool
    started_at: datetime
    last_seen_at: datetime
    # What its sandboxes enforce on its host (memory, processes, network...), as it reports.
    isolation: dict[str, str] | None


class QueueDetail(QueuePublic):
    dead_letters: int | None  # messages in jobs.<queue>.dead
    recent_dead_letters: list[DeadLetterPublic]
    workers: list[WorkerPublic] | None  # the live ones; administrators only (else null)
