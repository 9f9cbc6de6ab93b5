"""What the worker's parts share while it serves: the attempts running here, whether it stops."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from theodolite.environments import EnvironmentSupport
from theodolite_worker.jobs import JobControl


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkerState:
    """Written by the job consumer, read by the control consumer and the heartbeat."""

    started_at: datetime = field(default_factory=_now)
    stopping: bool = False
    busy: int = 0  # job messages in hand: waiting for a slot, being claimed or running
    controls: dict[uuid.UUID, JobControl] = field(default_factory=dict)  # running, by job
    isolation: dict[str, str] | None = None  # what its sandboxes enforce (probed at start)
    environments: EnvironmentSupport | None = None  # what it can build (found at start)
