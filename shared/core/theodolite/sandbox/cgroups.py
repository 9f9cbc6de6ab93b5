"""A cgroup per sandbox: memory and process limits the kernel enforces for the whole process
tree, its CPU time, what was breached, and a kill that reaches every process in it.

cgroup v2 where /sys/fs/cgroup is a v2 mount (most hosts); else the v1 hierarchies the host has
(memory, pids, cpu, cpuacct at /sys/fs/cgroup/<controller>). Groups live under a ``theodolite``
parent at each hierarchy's root, not below the worker's own group (a v1 container may sit in a
memory group of its own whose limit is not the sandbox's business).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from theodolite.sandbox.limits import Breach, SandboxLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "theodolite"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
# cpu.cfs_period_us / cpu.max period when a CPU share is asked for.
CPU_PERIOD_US = 100_000


class CgroupUnavailable(RuntimeError):
    """The host has no cgroup hierarchy this process can create groups in."""


@dataclass(frozen=True)
class CgroupLayout:
    """Where groups can be made: version 2 (one folder) or 1 (one folder per controller)."""

    version: int
    roots: dict[str, Path]  # controller -> the folder holding the `theodolite` parent

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.roots)


def detect_layout(root: Path = CGROUP_ROOT) -> CgroupLayout | None:
    """The host's cgroup layout with the controllers a sandbox uses, or None."""
    controllers_file = root / "cgroup.controllers"
    if controllers_file.exists():
        available = set(controllers_file.read_text().split())
        wanted = available & {"memory", "pids", "cpu"}
        return CgroupLayout(2, {name: root for name in sorted(wanted)}) if wanted else None
    roots = {
        name: root / name
        for name in V1_CONTROLLERS
        if (root / name / "cgroup.procs").exists() and os.access(root / name, os.W_OK)
    }
    return CgroupLayout(1, roots) if roots else None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as file:
        file.write(value)


def _read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (``oom_kill 3``) as a dict; empty when absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split() for line in lines)
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].isdigit()}


def _enable_controllers(root: Path, parent: Path, controllers: frozenset[str]) -> None:
    """Let the groups under ``parent`` use the controllers (v2). A cgroup with processes of its
    own cannot hand controllers down (the no-internal-processes rule: the root of a container's
    cgroup namespace holding the worker, say), so those processes move to a leaf of their own
    first, ``theodolite-init``, as container init systems do."""
    enable = " ".join(f"+{name}" for name in sorted(controllers))
    try:
        _write(root / "cgroup.subtree_control", enable)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
        leaf = root / "theodolite-init"
        leaf.mkdir(exist_ok=True)
        for pid in (root / "cgroup.procs").read_text().split():
            try:
                _write(leaf / "cgroup.procs", pid)
            except ProcessLookupError:
                continue
        _write(root / "cgroup.subtree_control", enable)
    _write(parent / "cgroup.subtree_control", enable)


class JobCgroup:
    """One sandbox's cgroup (a folder per hierarchy). Make it with `create`."""

    def __init__(
        self, layout: CgroupLayout, folders: dict[str, Path], limits: SandboxLimits
    ) -> None:
        self.layout = layout
        self.folders = folders  # controller -> this group's folder (one shared folder on v2)
        self.limits = limits

    @classmethod
    def create(
        cls,
        name: str,
        limits: SandboxLimits,
        *,
        cpus: float | None = None,
        layout: CgroupLayout | None = None,
    ) -> JobCgroup:
        """A new group named ``name`` (unique per sandbox) with the memory and process limits
        set, and a CPU quota of ``cpus`` cores when given. Raises CgroupUnavailable."""
        if not _NAME.match(name):
            raise ValueError(f"not a cgroup name: {name!r}")
        layout = layout or detect_layout()
        if layout is None:
            raise CgroupUnavailable("no writable cgroup hierarchy with memory, pids or cpu")
        folders: dict[str, Path] = {}
        for controller, root in layout.roots.items():
            parent = root / PARENT
            if not parent.exists():
                parent.mkdir(exist_ok=True)
                if layout.version == 2:
                    _enable_controllers(root, parent, layout.controllers)
            folder = parent / name
            folder.mkdir(exist_ok=True)
            folders[controller] = folder
        group = cls(layout, folders, limits)
        group._set_limits(cpus)
        return group

    def _set_limits(self, cpus: float | None) -> None:
        memory, pids, cpu = (self.folders.get(c) for c in ("memory", "pids", "cpu"))
        v2 = self.layout.version == 2
        if memory is not None and self.limits.memory_bytes is not None:
            value = str(self.limits.memory_bytes)
            if v2:
                _write(memory / "memory.max", value)
                if (memory / "memory.swap.max").exists():
                    _write(memory / "memory.swap.max", "0")
            else:
                _write(memory / "memory.limit_in_bytes", value)
                if (memory / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                    _write(memory / "memory.memsw.limit_in_bytes", value)
        if pids is not None and self.limits.processes is not None:
            _write(pids / "pids.max", str(self.limits.processes))
        if cpu is not None and cpus is not None:
            quota = str(int(cpus * CPU_PERIOD_US))
            if v2:
                _write(cpu / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", quota)

    @property
    def limits_memory(self) -> bool:
        """Whether the kernel bounds this group's memory (else RLIMIT_AS stands in)."""
        return "memory" in self.folders and self.limits.memory_bytes is not None

    @property
    def limits_processes(self) -> bool:
        """Whether the kernel bounds this group's process count."""
        return "pids" in self.folders and self.limits.processes is not None

    def procs_files(self) -> list[Path]:
        """The files a process writes its pid into to join (one per hierarchy)."""
        return sorted({folder / "cgroup.procs" for folder in self.folders.values()})

    def add(self, pid: int) -> None:
        """Move a process (and the children it starts from now on) into the group."""
        for path in self.procs_files():
            _write(path, str(pid))

    def pids(self) -> set[int]:
        """Every process in the group, in any of its hierarchies."""
        found: set[int] = set()
        for path in self.procs_files():
            try:
                found.update(int(line) for line in path.read_text().split())
            except FileNotFoundError:
                continue
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process of the group so far, if a hierarchy counts it."""
        if self.layout.version == 2 and "cpu" in self.folders:
            usage = _read_keyed(self.folders["cpu"] / "cpu.stat").get("usage_usec")
            return None if usage is None else usage / 1e6
        for controller in ("cpuacct", "cpu"):
            folder = self.folders.get(controller)
            if folder is not None and (folder / "cpuacct.usage").exists():
                return int((folder / "cpuacct.usage").read_text()) / 1e9
        return None

    def breached(self) -> Breach | None:
        """The limit the group ran into, if any: memory (an OOM kill), processes (a refused
        fork), or CPU (the whole tree's time past the limit)."""
        memory, pids = self.folders.get("memory"), self.folders.get("pids")
        if memory is not None and self.limits.memory_bytes is not None:
            if self.layout.version == 2:
                if _read_keyed(memory / "memory.events").get("oom_kill", 0) > 0:
                    return Breach.MEMORY
            else:
                oom = _read_keyed(memory / "memory.oom_control")
                if oom.get("oom_kill", 0) > 0 or oom.get("under_oom", 0) > 0:
                    return Breach.MEMORY
                # Kernels before 4.13 count no OOM kills: a hit limit is the best sign there.
                if "oom_kill" not in oom and int((memory / "memory.failcnt").read_text()) > 0:
                    return Breach.MEMORY
        if pids is not None and self.limits.processes is not None:
            if _read_keyed(pids / "pids.events").get("max", 0) > 0:
                return Breach.PROCESSES
        used = self.cpu_seconds()
        if used is not None and self.limits.cpu_seconds is not None:
            if used >= self.limits.cpu_seconds:  # RLIMIT_CPU kills at the limit itself
                return Breach.CPU
        return None

    def kill_all(self, *, within_s: float = 5.0) -> bool:
        """SIGKILL every process of the group until none is left (a fork bomb races the
        loop, so it repeats); True once empty."""
        kill_file = next(iter(self.folders.values())) / "cgroup.kill"
        if self.layout.version == 2 and kill_file.exists():
            _write(kill_file, "1")
        deadline = time.monotonic() + within_s
        while True:
            alive = self.pids()
            if not alive:
                return True
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and delete the group's folders."""
        self.kill_all()
        for folder in set(self.folders.values()):
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy while the last processes are being reaped
                    time.sleep(0.01)
