"""Watching the plugin bucket: an archive put there with any S3 client is validated and
published within seconds, with no call to the registry. S3 servers other than MinIO have no
bucket notifications, so the registry lists the bucket on a short interval; an invalid archive
is recorded as rejected with its reason and not tried again until its bytes (etag) change.
Whoever writes to the bucket publishes as the system group: a name another group owns is
rejected."""

from __future__ import annotations

import asyncio
import logging
from pathlib import PurePosixPath

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.registry_tables import PluginDrop
from theodolite.db.tables import utcnow
from theodolite.periodic import PeriodicService
from theodolite.storage import ObjectStore
from theodolite_registry.publishing import (
    NameOwned,
    Publisher,
    ValidationFailed,
    VersionConflict,
)
from theodolite_registry.repositories import plugins as repository

log = logging.getLogger(__name__)

# The registry's own, content-addressed objects: never candidates.
OWN_PREFIXES = ("archives/", "wheels/")
CANDIDATE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar")


class BucketReconciler(PeriodicService):
    """Each round, validates and publishes every new or changed archive in the plugin bucket."""

    name = "bucket-reconciler"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        bucket: str,
        publisher: Publisher,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._store = store
        self._bucket = bucket
        self._publisher = publisher

    async def run_once(self) -> None:
        # A failed listing is logged by the base class and tried again next interval.
        await self.reconcile_once()

    async def reconcile_once(self) -> int:
        """Handle every new or changed candidate; the number handled."""
        listing = await asyncio.to_thread(self._store.list_etags, self._bucket)
        handled = 0
        for key, etag in sorted(listing.items()):
            if key.startswith(OWN_PREFIXES) or not key.endswith(CANDIDATE_SUFFIXES):
                continue
            async with self._sessions() as session:
                known = await repository.drop(session=session, key=key)
                if known is not None and known.etag == etag:
                    continue
                await self._handle(session, key, etag)
                handled += 1
        return handled

    async def _handle(self, session: AsyncSession, key: str, etag: str) -> None:
        data = await asyncio.to_thread(self._store.get_bytes, self._bucket, key)
        drop = PluginDrop(key=key, etag=etag, status="rejected", seen_at=utcnow())
        try:
            row, _ = await self._publisher.publish(
                session, data, PurePosixPath(key).name, f"bucket:{key}"
            )
        except (ValidationFailed, NameOwned, VersionConflict) as exc:
            drop.reason = getattr(exc, "reason", None) or str(exc)
            log.warning("plugin bucket: %s rejected: %s", key, drop.reason)
        else:
            drop.status, drop.name, drop.version = "published", row.name, row.version
        # The drop row is this loop's own unit of work: one commit per archive handled.
        await session.merge(drop)
        await session.commit()
