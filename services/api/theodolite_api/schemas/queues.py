from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from theodolite.topology import QUEUE_NAME_PATTERN


class QueueCreate(BaseModel):
    name: str = Field(
        pattern=QUEUE_NAME_PATTERN, description="Lower-case letters, digits, - and _."
    )
    description: str | None = Field(None, max_length=1000)


class QueuePublic(BaseModel):
    name: str
    description: str | None
    live_workers: int
    waiting_jobs: int | None  # messages ready in the broker; None when it cannot be asked
    created_at: datetime
