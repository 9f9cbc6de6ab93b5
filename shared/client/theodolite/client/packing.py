"""Entry point and plugin folders packed for upload."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def pack_folder(folder: Path) -> bytes:
    """A reproducible tar.gz of a folder: the same files always give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as archive:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    # gzip stores a timestamp of its own in its header: zero it for reproducible bytes.
    data = bytearray(buffer.getvalue())
    data[4:8] = b"\x00\x00\x00\x00"
    return bytes(data)


def archive_of(source: Path) -> tuple[bytes, str]:
    """A folder packed as tar.gz, or an archive file as it is; and its file name."""
    if source.is_dir():
        return pack_folder(source), f"{source.resolve().name}.tar.gz"
    return source.read_bytes(), source.name
