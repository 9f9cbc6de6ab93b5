"""Published plugin versions cached on local disk, unpacked and ready to import: fetched when
``plugin.published`` arrives (prefetch) or when a job needs one, sha256-verified."""

from __future__ import annotations

import asyncio
import logging
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

from theodolite.events import PluginPin
from theodolite.storage import ObjectStore

log = logging.getLogger(__name__)


class PluginCache:
    def __init__(self, *, store: ObjectStore, bucket: str, directory: Path) -> None:
        self._store = store
        self._bucket = bucket
        self._directory = directory
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def ensure(self, wheel_key: str, wheel_sha256: str) -> Path:
        """The unpacked wheel's folder, fetched and verified once."""
        target = self._directory / wheel_sha256
        async with self._locks[wheel_sha256]:
            if not target.exists():
                await asyncio.to_thread(self._fetch, wheel_key, wheel_sha256, target)
        return target

    async def ensure_pin(self, pin: PluginPin) -> Path:
        assert pin.wheel_key is not None and pin.wheel_sha256 is not None
        return await self.ensure(pin.wheel_key, pin.wheel_sha256)

    def _fetch(self, wheel_key: str, wheel_sha256: str, target: Path) -> None:
        wheel = target.with_name(f"{wheel_sha256}.whl")
        partial = target.with_name(f"{wheel_sha256}.partial")
        # Made here, not in the constructor: building the worker touches no disk.
        self._directory.mkdir(parents=True, exist_ok=True)
        self._store.download_verified(self._bucket, wheel_key, wheel_sha256, wheel)
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)  # the registry built or checked this wheel
        partial.rename(target)  # atomic: a folder that exists is complete
        wheel.unlink()
        log.info("plugin wheel %s cached", wheel_key)
