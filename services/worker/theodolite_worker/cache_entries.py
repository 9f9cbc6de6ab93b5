"""Writing and discarding cache entries so that neither a job nor a second worker replica
sharing the volume can leave a wrong or half-written entry behind.

Every entry is written under a unique temporary name in its own folder (two writers never share
one), fsynced, made read-only and moved into place with ``os.replace``: an entry that exists is
complete. Two writers racing for one entry both write the same verified bytes, so whichever
rename lands last is as good as the first. A discarded entry is first renamed out of the way (a
reader sees it whole or not at all), then deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from theodolite.storage import IntegrityError

READ_ONLY_FILE = 0o444
READ_ONLY_FOLDER = 0o555
_CHUNK = 1 << 16


def sha256_of_file(path: Path) -> str:
    """The file's sha256, read in chunks; follows no symlink (an entry is a plain file)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as source:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(folder: Path, name: str) -> str:
    """A unique hidden name beside ``name``: what a writer uses before its rename."""
    return str(folder / f".{name}.{uuid.uuid4().hex}.tmp")


def write_verified_file(folder: Path, name: str, chunks: Iterable[bytes], sha256: str) -> Path:
    """``folder/name`` holding ``chunks``, read-only, if their sha256 is ``sha256``;
    IntegrityError (and nothing written) otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise IntegrityError(f"{name}: fetched bytes have sha256 {digest.hexdigest()}")
        os.chmod(temporary, READ_ONLY_FILE)
        os.replace(temporary, folder / name)
        fsync_folder(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return folder / name


def make_tree_read_only(root: Path) -> None:
    """Files 0444, folders 0555, fsynced: a job (another uid) can neither change nor add."""
    for current, folders, files in os.walk(root, topdown=False):
        base = Path(current)
        for file_name in files:
            path = base / file_name
            if path.is_symlink():
                continue  # extraction makes none; a symlink's mode means nothing
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
                os.fchmod(fd, READ_ONLY_FILE)
            finally:
                os.close(fd)
        for folder_name in folders:
            os.chmod(base / folder_name, READ_ONLY_FOLDER, follow_symlinks=False)
        fsync_folder(base)
    os.chmod(root, READ_ONLY_FOLDER)


def _make_writable(root: Path) -> None:
    for current, folders, _files in os.walk(root):
        for folder_name in folders:
            path = Path(current) / folder_name
            if not path.is_symlink():
                os.chmod(path, stat.S_IRWXU)


def discard(path: Path) -> None:
    """Remove an entry (file or folder), first renaming it aside so no reader sees it half
    deleted; a second discarder finding it gone is fine."""
    aside = Path(temporary_name(path.parent, path.name))
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if aside.is_dir() and not aside.is_symlink():
        os.chmod(aside, stat.S_IRWXU)
        _make_writable(aside)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
