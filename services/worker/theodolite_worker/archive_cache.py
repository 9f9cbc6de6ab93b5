"""Entry point archives cached on local disk by sha256, verified whenever they are used.

The name of an entry is the sha256 the job message carries, so every read checks the bytes
against it: an entry that was changed on disk (by anything that could write the volume) is
logged, removed and fetched again rather than handed to a job. Entries are written read-only
under unique temporary names and renamed into place (see ``cache_entries``), so two worker
replicas sharing the volume can fetch the same archive at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from theodolite.storage import ObjectStore, entrypoint_archive_key
from theodolite_worker.cache_entries import discard, write_verified_file

log = logging.getLogger(__name__)


class ArchiveCache:
    def __init__(self, *, store: ObjectStore, bucket: str, directory: Path) -> None:
        self._store = store
        self._bucket = bucket
        self._directory = directory
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, sha256: str) -> bytes:
        """The archive's bytes, fetched once and verified against their sha256 at every use."""
        async with self._locks[sha256]:
            data = await asyncio.to_thread(self._cached, sha256)
            if data is None:
                data = await asyncio.to_thread(self._fetch, sha256)
        return data

    def _cached(self, sha256: str) -> bytes | None:
        path = self._directory / sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        actual = hashlib.sha256(data).hexdigest()
        if actual == sha256:
            return data
        log.warning(
            "archive cache entry %s has sha256 %s: removed, fetching it again", path, actual
        )
        discard(path)
        return None

    def _fetch(self, sha256: str) -> bytes:
        # The folder is made here, not in the constructor: building the worker touches no disk.
        # The job gets the bytes verified in memory, whatever happens to the file afterwards.
        data = b"".join(self._store.iter_chunks(self._bucket, entrypoint_archive_key(sha256)))
        write_verified_file(self._directory, sha256, [data], sha256)
        return data
