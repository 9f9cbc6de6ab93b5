"""Disk use of a work folder, for the worker to poll against ``SandboxLimits.disk_bytes``.

Blocks, not apparent sizes (a sparse file uses no disk); hard links count once; symlinks are
not followed (a link to /usr is not the job's disk use).
"""

from __future__ import annotations

import os
from pathlib import Path


def folder_bytes(path: Path | str) -> int:
    """Bytes of disk the files under ``path`` take (os.scandir, no subprocess)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [os.fspath(path)]
    while pending:
        folder = pending.pop()
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with entries:
            for entry in entries:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed while we looked
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                if stat.st_nlink > 1:
                    key = (stat.st_dev, stat.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += stat.st_blocks * 512
    return total
