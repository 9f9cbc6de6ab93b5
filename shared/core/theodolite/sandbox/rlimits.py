"""Per-process kernel limits (rlimits) from a sandbox's limits; stdlib only (the warm pool's
forkserver imports this through `enter`).

RLIMIT_NPROC counts every process of a uid, which is why each sandbox runs as a uid of its own.
RLIMIT_CPU is per process (a fork starts at zero): a cgroup's usage bounds the tree. RLIMIT_AS
stands in for memory only where no memory cgroup exists: it counts address space, not memory,
so a limit near what a job really uses breaks libraries that reserve much (torch, the JVM).
"""

from __future__ import annotations

import resource
from typing import Protocol


class _Limits(Protocol):
    """What `SandboxLimits` offers (not imported: pydantic is not cheap for the forkserver)."""

    @property
    def memory_bytes(self) -> int | None: ...
    @property
    def cpu_seconds(self) -> int | None: ...
    @property
    def processes(self) -> int | None: ...
    @property
    def open_files(self) -> int | None: ...
    @property
    def file_size_bytes(self) -> int | None: ...


# prlimit(1) option names of each resource.
PRLIMIT_OPTION = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_NPROC: "--nproc",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_CORE: "--core",
}


def rlimits_for(limits: _Limits, *, memory_in_cgroup: bool) -> dict[int, int]:
    """resource -> value (soft and hard alike) for one sandbox; core dumps always off."""
    wanted: dict[int, int | None] = {
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_NPROC: limits.processes,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_FSIZE: limits.file_size_bytes,
        resource.RLIMIT_AS: None if memory_in_cgroup else limits.memory_bytes,
        resource.RLIMIT_CORE: 0,
    }
    return {kind: value for kind, value in wanted.items() if value is not None}


def apply_rlimits(values: dict[int, int]) -> None:
    """Set each limit in this process (inherited by what it starts)."""
    for kind, value in values.items():
        resource.setrlimit(kind, (value, value))


def prlimit_arguments(values: dict[int, int]) -> list[str]:
    """The same limits as prlimit(1) options (``--cpu=60:60``)."""
    return [f"{PRLIMIT_OPTION[kind]}={value}:{value}" for kind, value in values.items()]
