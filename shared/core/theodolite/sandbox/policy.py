"""What one sandbox is: its uid, its folders, its environment, its limits, its devices.

Both backends (`bwrap.bwrap_command`, `enter.enter_sandbox`) read the same policy, so a job
started cold and one started warm are contained alike.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from theodolite.sandbox.limits import SandboxLimits

# What an interpreter and a shell need from the host besides the caller's read-only paths: the
# system's programs and libraries, the dynamic loader's cache, time zones and certificates.
# Paths missing on a host are skipped; symlinks (merged /usr: /bin -> usr/bin) stay symlinks.
SYSTEM_READ_ONLY: tuple[Path, ...] = tuple(
    Path(path)
    for path in (
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/alternatives",
        "/etc/ssl/certs",
        "/etc/hosts",
        "/etc/nsswitch.conf",
    )
)
# With a network: name resolution as the host has it.
NETWORK_READ_ONLY: tuple[Path, ...] = (Path("/etc/resolv.conf"), Path("/etc/gai.conf"))
# Uids for sandboxes: one per running sandbox, since RLIMIT_NPROC counts per uid.
FIRST_SANDBOX_UID = 200_000
SANDBOX_UID_COUNT = 10_000


@dataclass(frozen=True)
class SandboxPolicy:
    """One sandbox: the unprivileged uid and gid it runs as, the folder it may write, what it may
    read (besides `SYSTEM_READ_ONLY`), its whole environment, its limits, whether it has a
    network (its own loopback only when not), device nodes passed in, its hostname and the
    file descriptors it keeps (a result pipe)."""

    uid: int
    gid: int
    work_dir: Path
    read_only: tuple[Path, ...]
    env: Mapping[str, str]
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    network: bool = False
    devices: tuple[Path, ...] = ()
    hostname: str = "sandbox"
    pass_fds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("a sandbox runs as an unprivileged uid and gid, never 0")
        if self.uid == os.getuid():
            raise ValueError("a sandbox never runs as the worker's own uid")
        for path in (self.work_dir, *self.read_only, *self.devices):
            if not path.is_absolute():
                raise ValueError(f"sandbox paths must be absolute: {path}")

    def system_paths(self) -> tuple[Path, ...]:
        """The host paths bound read-only for every sandbox of this policy (present ones)."""
        wanted = SYSTEM_READ_ONLY + (NETWORK_READ_ONLY if self.network else ())
        return tuple(path for path in wanted if os.path.lexists(path))

    def read_only_paths(self) -> tuple[Path, ...]:
        """The caller's read-only paths, present ones, without those a system path covers."""
        return tuple(path for path in self.read_only if os.path.exists(path))


def interpreter_paths() -> tuple[Path, ...]:
    """What this interpreter needs to run inside a sandbox: its prefixes, its executable's
    folder, its import path and the source folders of editable installs (their import hooks
    map package names to folders outside site-packages)."""
    found: list[Path] = []
    executable = Path(sys.executable)
    candidates: list[str] = [sys.prefix, sys.base_prefix, sys.exec_prefix]
    candidates += [str(executable.parent), str(executable.resolve().parent.parent)]
    # sys.path[0] is the script's folder or the working directory: not the interpreter's.
    candidates += [entry for entry in sys.path[1:] if entry and os.path.isabs(entry)]
    for name, module in list(sys.modules.items()):
        if name.startswith("__editable__") and isinstance(getattr(module, "MAPPING", None), dict):
            candidates += [str(path) for path in module.MAPPING.values()]
    for candidate in candidates:
        path = Path(candidate)
        if path.exists() and not any(path.is_relative_to(kept) for kept in found):
            found = [kept for kept in found if not kept.is_relative_to(path)] + [path]
    return tuple(found)


class SandboxUids:
    """Hands out a distinct uid (gid the same) per running sandbox, thread-safe."""

    def __init__(self, first: int = FIRST_SANDBOX_UID, count: int = SANDBOX_UID_COUNT) -> None:
        self._free = list(range(first + count - 1, first - 1, -1))
        self._lock = threading.Lock()

    def acquire(self) -> int:
        """A uid no other running sandbox of this worker uses."""
        with self._lock:
            if not self._free:
                raise RuntimeError("no sandbox uid left")
            return self._free.pop()

    def release(self, uid: int) -> None:
        """Give a uid back once every process of its sandbox is gone."""
        with self._lock:
            self._free.append(uid)


def hand_over(work_dir: Path, uid: int, gid: int, *, also: Iterable[Path] = ()) -> None:
    """Make the work folder (and everything in it) the sandbox uid's, so the job can write it."""
    for path in (work_dir, *also):
        os.chown(path, uid, gid, follow_symlinks=False)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
