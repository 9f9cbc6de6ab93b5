"""Wire models of plugins, their versions, the bucket's drops and resolution for new jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

from theodolite.problems import PLUGIN_NAME_PATTERN, PLUGIN_VERSION_PATTERN, Problem

# Path segments: a name or version outside the grammar answers 422 (never a lookup, never a 500).
PluginNamePath = Annotated[str, Path(pattern=PLUGIN_NAME_PATTERN, max_length=200)]
PluginVersionPath = Annotated[str, Path(pattern=PLUGIN_VERSION_PATTERN, max_length=100)]


class PluginVersionPublic(BaseModel):
    name: str
    version: str
    sha256: str
    status: str  # published | yanked
    module: str
    source: str
    published_at: datetime
    yanked_at: datetime | None
    tasks: dict[str, Any]


class PluginVersionsPublic(BaseModel):
    data: list[PluginVersionPublic]
    count: int
    group_id: uuid.UUID | None = None  # the group owning the name: it publishes and yanks
    group: str | None = None  # that group's name


class PluginPublic(BaseModel):
    name: str
    latest_version: str | None  # None when every version is yanked
    versions: list[str]


class PluginsPublic(BaseModel):
    data: list[PluginPublic]
    count: int


class DropPublic(BaseModel):
    key: str
    etag: str
    status: str
    reason: str | None
    name: str | None
    version: str | None
    seen_at: datetime


class DropsPublic(BaseModel):
    data: list[DropPublic]
    count: int


class ResolveRequest(BaseModel):
    plugins: list[str]
    pins: dict[str, str] = Field(default_factory=dict)


class ResolvedPlugin(BaseModel):
    version: str
    module: str
    wheel_key: str
    wheel_sha256: str
    tasks: dict[str, Any]


class ResolveResponse(BaseModel):
    resolved: dict[str, ResolvedPlugin]
    problems: list[Problem]
