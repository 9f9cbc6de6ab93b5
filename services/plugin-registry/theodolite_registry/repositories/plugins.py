"""The catalogue (plugin versions), the owners of plugin names and the bucket's drops.
Functions take the session keyword-only and never commit."""

from __future__ import annotations

import uuid

from packaging.version import InvalidVersion, Version
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.identity_tables import Group
from theodolite.db.registry_tables import PluginDrop, PluginName, PluginVersion


def version_key(version: str) -> tuple[int, Version | str]:
    """Sort key: PEP 440 versions above (and among themselves by) their meaning, others by text."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


async def get(*, session: AsyncSession, name: str, version: str) -> PluginVersion | None:
    return await session.get(PluginVersion, (name, version))


async def get_by_sha256(*, session: AsyncSession, sha256: str) -> PluginVersion | None:
    rows = await session.exec(select(PluginVersion).where(PluginVersion.sha256 == sha256))
    return rows.first()


async def versions(*, session: AsyncSession, name: str | None = None) -> list[PluginVersion]:
    """Every version (of one plugin, if named), by name and then by version, oldest first."""
    statement = select(PluginVersion)
    if name is not None:
        statement = statement.where(PluginVersion.name == name)
    rows = list(await session.exec(statement.order_by(col(PluginVersion.name))))
    return sorted(rows, key=lambda r: (r.name, version_key(r.version)))


def latest(rows: list[PluginVersion]) -> dict[str, PluginVersion]:
    """The highest published (not yanked) version of each plugin."""
    found: dict[str, PluginVersion] = {}
    for row in rows:
        if row.status != "published":
            continue
        if row.name not in found or version_key(row.version) > version_key(found[row.name].version):
            found[row.name] = row
    return found


async def owner(*, session: AsyncSession, name: str) -> PluginName | None:
    """The row saying which group owns a plugin name; None for a name never published."""
    return await session.get(PluginName, name)


async def group_names(*, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of groups (the api owns the groups table; the registry only reads names)."""
    if not ids:
        return {}
    rows = await session.exec(select(Group.id, Group.name).where(col(Group.id).in_(ids)))
    return dict(rows.all())


async def drop(*, session: AsyncSession, key: str) -> PluginDrop | None:
    return await session.get(PluginDrop, key)


async def drops(*, session: AsyncSession) -> list[PluginDrop]:
    """Every archive seen in the plugin bucket, the most recently seen first."""
    rows = list(await session.exec(select(PluginDrop)))
    return sorted(rows, key=lambda r: r.seen_at, reverse=True)
