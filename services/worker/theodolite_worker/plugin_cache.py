"""Published plugin versions cached on local disk, unpacked and ready to import: fetched when
``plugin.published`` arrives (prefetch) or when a job needs one.

An entry is two things, both named by the wheel's sha256 (which the job's pin carries): the
wheel itself and the folder it unpacks to. Both are read-only and owned by the worker (jobs see
them through a read-only bind as well), and both are verified when used: the wheel against its
sha256, the folder file by file against the wheel's members. A full check runs the first time
this process uses an entry; afterwards a stat of every file (inode, size, mtime and ctime, which
no writer can set back) shows that nothing changed since. An entry that fails is logged, removed
and fetched again. Writing goes through unique temporary names and ``os.replace`` (see
``cache_entries``), so two worker replicas sharing the volume may fetch one version at once.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

from theodolite.events import PluginPin
from theodolite.storage import IntegrityError, ObjectStore
from theodolite_worker.cache_entries import (
    discard,
    fsync_folder,
    make_tree_read_only,
    sha256_of_file,
    write_verified_file,
)

log = logging.getLogger(__name__)

FOLDER = "/"  # a manifest's mark for a folder (a file's value is its sha256)
Manifest = dict[str, str]
Snapshot = tuple[tuple[str, int, int, int, int, int], ...]


def wheel_manifest(wheel: Path) -> Manifest:
    """What unpacking ``wheel`` gives: each file's relative path and sha256, each folder."""
    manifest: Manifest = {}
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            path = PurePosixPath(info.filename)
            if path.is_absolute() or ".." in path.parts:
                raise IntegrityError(f"wheel member {info.filename!r} leaves its folder")
            for parent in list(path.parents)[:-1]:
                manifest[str(parent)] = FOLDER
            if info.is_dir():
                manifest[str(path)] = FOLDER
            else:
                manifest[str(path)] = hashlib.sha256(archive.read(info)).hexdigest()
    return manifest


def folder_manifest(root: Path) -> Manifest:
    """The same for a folder on disk; anything but plain files and folders marks itself."""
    manifest: Manifest = {}
    for current, folders, files in os.walk(root):
        base = Path(current)
        for name in folders:
            path = base / name
            manifest[str(path.relative_to(root))] = "symlink" if path.is_symlink() else FOLDER
        for name in files:
            path = base / name
            try:
                digest = sha256_of_file(path)
            except OSError:  # a symlink (O_NOFOLLOW) or something unreadable
                digest = "unreadable"
            manifest[str(path.relative_to(root))] = digest
    return manifest


def snapshot(root: Path) -> Snapshot | None:
    """Every entry's stat as it is now; None when the folder is gone."""
    if not root.is_dir():
        return None
    found = []
    for current, folders, files in os.walk(root):
        for name in (*folders, *files):
            path = Path(current) / name
            st = path.lstat()
            found.append(
                (
                    str(path.relative_to(root)),
                    st.st_mode,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                )
            )
    found.sort()
    return tuple(found)


class PluginCache:
    def __init__(self, *, store: ObjectStore, bucket: str, directory: Path) -> None:
        self._store = store
        self._bucket = bucket
        self._directory = directory
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._verified: dict[str, Snapshot] = {}  # this process's checked entries

    async def ensure(self, wheel_key: str, wheel_sha256: str) -> Path:
        """The unpacked wheel's folder, fetched once and verified whenever it is used."""
        async with self._locks[wheel_sha256]:
            return await asyncio.to_thread(self._ensure, wheel_key, wheel_sha256)

    async def ensure_pin(self, pin: PluginPin) -> Path:
        assert pin.wheel_key is not None and pin.wheel_sha256 is not None
        return await self.ensure(pin.wheel_key, pin.wheel_sha256)

    def _ensure(self, wheel_key: str, wheel_sha256: str) -> Path:
        target = self._directory / wheel_sha256
        known = self._verified.get(wheel_sha256)
        if known is not None and known == snapshot(target):
            return target
        self._verified.pop(wheel_sha256, None)
        wheel = self._wheel(wheel_key, wheel_sha256)
        expected = wheel_manifest(wheel)
        if target.exists() or target.is_symlink():
            if folder_manifest(target) == expected and not target.is_symlink():
                return self._remember(wheel_sha256, target)
            log.warning(
                "plugin cache entry %s differs from its wheel: removed, unpacking again", target
            )
            discard(target)
        self._unpack(wheel, target, expected)
        log.info("plugin wheel %s cached", wheel_key)
        return self._remember(wheel_sha256, target)

    def _remember(self, wheel_sha256: str, target: Path) -> Path:
        state = snapshot(target)
        if state is not None:
            self._verified[wheel_sha256] = state
        return target

    def _wheel(self, wheel_key: str, wheel_sha256: str) -> Path:
        """The wheel's verified file, fetched again when missing or changed."""
        name = f"{wheel_sha256}.whl"
        path = self._directory / name
        if path.exists() or path.is_symlink():
            try:
                actual = sha256_of_file(path)
            except OSError:
                actual = "unreadable"
            if actual == wheel_sha256:
                return path
            log.warning(
                "plugin cache wheel %s has sha256 %s: removed, fetching it again", path, actual
            )
            discard(path)
        # The folder is made here, not in the constructor: building the worker touches no disk.
        chunks = self._store.iter_chunks(self._bucket, wheel_key)
        return write_verified_file(self._directory, name, chunks, wheel_sha256)

    def _unpack(self, wheel: Path, target: Path, expected: Manifest) -> None:
        partial = Path(
            tempfile.mkdtemp(dir=self._directory, prefix=f".{target.name}.", suffix=".tmp")
        )
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(partial)  # the registry built or checked this wheel
            if folder_manifest(partial) != expected:
                raise IntegrityError(f"unpacking {wheel.name} gave other files than it holds")
            make_tree_read_only(partial)
            try:
                os.replace(partial, target)  # atomic: a folder that exists is complete
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # Another writer (a second replica) got there first: keep its entry if it is right.
                if folder_manifest(target) != expected:
                    discard(target)
                    os.replace(partial, target)
            fsync_folder(self._directory)
        finally:
            if partial.exists():
                discard(partial)
