"""The plugin registry's table models: the catalogue of published versions, which group owns
each plugin name, and what the registry found in the plugin bucket. Only the registry writes
them; the api reads the catalogue through the registry's HTTP routes, never these tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel

from theodolite.db.tables import timestamp_field


class PluginName(SQLModel, table=True):
    """A plugin name belongs to the group that first published it: only that group (or an
    administrator) publishes or yanks its versions. The built-in plugins belong to the system
    group."""

    __tablename__ = "plugin_names"

    name: str = Field(primary_key=True)
    group_id: uuid.UUID = Field(foreign_key="groups.id", index=True)
    created_at: datetime = timestamp_field()


class PluginVersion(SQLModel, table=True):
    """A published plugin version. Immutable once published:
    only ``status`` moves, from published to yanked."""

    __tablename__ = "plugin_versions"

    name: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    sha256: str = Field(index=True)  # of the archive as uploaded
    archive_key: str
    wheel_key: str  # what workers install: the uploaded wheel, or one built from the source
    wheel_sha256: str
    module: str
    tasks: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = "published"  # published | yanked
    source: str  # "upload" or "bucket:<key>"
    published_at: datetime = timestamp_field()
    yanked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class PluginDrop(SQLModel, table=True):
    """An archive found in the plugin bucket: published, or
    rejected with its reason and not retried until its bytes (etag) change."""

    __tablename__ = "plugin_drops"

    key: str = Field(primary_key=True)
    etag: str
    status: str  # published | rejected
    reason: str | None = Field(default=None, sa_type=Text)
    name: str | None = None
    version: str | None = None
    seen_at: datetime = timestamp_field()
