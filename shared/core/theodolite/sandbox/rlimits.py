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


# Where a pids cgroup counts the sandbox's processes, RLIMIT_NPROC stays this far above it as a
# backstop: the kernel checks the rlimit first, and only the cgroup records that it refused.
NPROC_MARGIN = 8


def rlimits_for(
    limits: _Limits, *, memory_in_cgroup: bool, processes_in_cgroup: bool = False
) -> dict[int, int]:
    """resource -> value (soft and hard alike) for one sandbox; core dumps always off."""
    processes = limits.processes
    if processes is not None and processes_in_cgroup:
        processes += NPROC_MARGIN
    wanted: dict[int, int | None] = {
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_NPROC: processes,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_FSIZE: limits.file_size_bytes,
        resource.RLIMIT_AS: None if memory_in_cgroup else limits.memory_bytes,
        resource.RLIMIT_CORE: 0,
    }
    return {kind: value for kind, value in wanted.items() if value is not None}


def _soft_and_hard(kind: int, value: int) -> tuple[int, int]:
    # At the soft CPU limit the kernel sends SIGXCPU, which names the breach; SIGKILL follows
    # a second later for a process that ignores it.
    return (value, value + 1) if kind == resource.RLIMIT_CPU else (value, value)


def apply_rlimits(values: dict[int, int]) -> None:
    """Set each limit in this process (inherited by what it starts)."""
    for kind, value in values.items():
        resource.setrlimit(kind, _soft_and_hard(kind, value))


def prlimit_arguments(values: dict[int, int]) -> list[str]:
    """The same limits as prlimit(1) options (``--cpu=60:61``)."""
    return [
        f"{PRLIMIT_OPTION[kind]}={soft}:{hard}"
        for kind, (soft, hard) in (
            (kind, _soft_and_hard(kind, value)) for kind, value in values.items()
        )
    ]
