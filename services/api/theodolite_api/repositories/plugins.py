from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import AnnouncedPlugin
from theodolite.events import WorkerPlugins
from theodolite.sdk.discovery import Catalogue, PluginSpec


async def record_announcement(
    *, session: AsyncSession, announcement: WorkerPlugins, at: datetime
) -> None:
    for plugin in announcement.plugins:
        values = {
            "name": plugin.name,
            "version": plugin.version,
            "module": plugin.module,
            "tasks": {
                name: spec.model_dump(mode="json", by_alias=True)
                for name, spec in plugin.tasks.items()
            },
            "worker_id": announcement.worker_id,
            "queue": announcement.queue,
            "announced_at": at,
        }
        statement = insert(AnnouncedPlugin).values(**values)
        await session.exec(
            statement.on_conflict_do_update(
                index_elements=[AnnouncedPlugin.name, AnnouncedPlugin.version],
                set_={k: v for k, v in values.items() if k not in {"name", "version"}},
            )
        )


async def catalogue(*, session: AsyncSession) -> Catalogue:
    """The most recently announced version of every plugin."""
    rows = await session.exec(select(AnnouncedPlugin).order_by(col(AnnouncedPlugin.announced_at)))
    found = Catalogue()
    for row in rows:  # later announcements win
        found.plugins[row.name] = PluginSpec(
            name=row.name, version=row.version, module=row.module, tasks=row.tasks
        )
    return found
