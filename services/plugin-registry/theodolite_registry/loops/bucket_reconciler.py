"""Watching the plugin bucket: an archive put there with any S3 client is validated and
published within seconds, with no call to the registry. S3 servers other than MinIO have no
bucket notifications, so the registry lists the bucket on a short interval; an invalid archive
is recorded as rejected with its reason and not tried again until its bytes (etag) change."""

from __future__ import annotations

import asyncio
import logging
from pathlib import PurePosixPath

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import PluginDrop, utcnow
from theodolite.storage import ObjectStore
from theodolite_registry.publishing import Publisher, ValidationFailed, VersionConflict
from theodolite_registry.repositories import plugins as repository

log = logging.getLogger(__name__)

# The registry's own, content-addressed objects: never candidates.
OWN_PREFIXES = ("archives/", "wheels/")
CANDIDATE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar")


class BucketReconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        bucket: str,
        publisher: Publisher,
        interval_s: float,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._bucket = bucket
        self._publisher = publisher
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reconciling the plugin bucket failed", exc_info=True)
            await asyncio.sleep(self._interval_s)

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
        except (ValidationFailed, VersionConflict) as exc:
            drop.reason = getattr(exc, "reason", None) or str(exc)
            log.warning("plugin bucket: %s rejected: %s", key, drop.reason)
        else:
            drop.status, drop.name, drop.version = "published", row.name, row.version
        await session.merge(drop)
        await session.commit()
