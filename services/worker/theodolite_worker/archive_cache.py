"""Entry point archives cached on local disk by sha256, verified when fetched."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from theodolite.storage import ObjectStore, entrypoint_archive_key


class ArchiveCache:
    def __init__(self, *, store: ObjectStore, bucket: str, directory: Path) -> None:
        self._store = store
        self._bucket = bucket
        self._directory = directory
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, sha256: str) -> bytes:
        """The archive's bytes, fetched once and verified against their sha256."""
        path = self._directory / sha256
        async with self._locks[sha256]:
            if not path.exists():
                await asyncio.to_thread(self._fetch, sha256, path)
        return await asyncio.to_thread(path.read_bytes)

    def _fetch(self, sha256: str, path: Path) -> None:
        # Made here, not in the constructor: building the worker touches no disk.
        self._directory.mkdir(parents=True, exist_ok=True)
        self._store.download_verified(self._bucket, entrypoint_archive_key(sha256), sha256, path)
