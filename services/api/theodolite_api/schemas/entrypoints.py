from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class ParameterPublic(BaseModel):
    name: str
    type: str
    default: str | None
    required: bool


class EntryPointPublic(BaseModel):
    name: str
    command: str
    parameters: list[ParameterPublic]


class EntryPointArchivePublic(BaseModel):
    id: uuid.UUID
    sha256: str
    filename: str | None
    size_bytes: int
    archive_format: str
    project_name: str | None
    entry_points: list[EntryPointPublic]
    created_at: datetime
