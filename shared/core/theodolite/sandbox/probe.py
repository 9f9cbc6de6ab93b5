"""What this host lets a sandbox enforce, found by trying: for the worker's log and readyz.

A host without namespaces (a container without CAP_SYS_ADMIN, say) cannot contain a job; the
worker refuses to start there unless a setting accepts weaker isolation, and `describe` says
what is missing either way.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from theodolite.sandbox.bwrap import BubblewrapMissing, bwrap_command
from theodolite.sandbox.cgroups import CgroupUnavailable, JobCgroup, detect_layout
from theodolite.sandbox.limits import SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy

PROBE_UID = 65534  # nobody: the probe writes nothing


@dataclass(frozen=True)
class Isolation:
    """The outcome of each probe: "" when it worked, else why not."""

    bwrap_problem: str
    enter_problem: str
    cgroup_version: int | None = None
    cgroup_controllers: tuple[str, ...] = ()
    cgroup_problem: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def namespaces(self) -> bool:
        """Both ways in (bwrap for cold commands, enter_sandbox for warm ones) work."""
        return not self.bwrap_problem and not self.enter_problem

    @property
    def enforced(self) -> dict[str, str]:
        """Each kind of containment -> how it is enforced here, or "no: why" (readyz, heartbeat)."""
        cgroup = f"cgroup v{self.cgroup_version}" if self.cgroup_version else ""
        has = set(self.cgroup_controllers)

        def by(controller: str, fallback: str) -> str:
            return f"{cgroup} {controller} + {fallback}" if controller in has else fallback

        return {
            "sandbox_bwrap": "yes" if not self.bwrap_problem else f"no: {self.bwrap_problem}",
            "sandbox_fork": "yes" if not self.enter_problem else f"no: {self.enter_problem}",
            "memory": f"{cgroup} memory" if "memory" in has else "RLIMIT_AS (address space)",
            "processes": by("pids", "RLIMIT_NPROC (own uid)"),
            "cpu_time": by(
                "cpuacct" if self.cgroup_version == 1 else "cpu", "RLIMIT_CPU per process"
            ),
            "open_files": "RLIMIT_NOFILE",
            "file_size": "RLIMIT_FSIZE",
            "disk": "work folder polled (folder_bytes)",
            "network": "own network namespace (loopback only)" if self.namespaces else "no",
        }

    def describe(self) -> str:
        """One log line: what is enforced, what is not."""
        enforced = ", ".join(f"{kind}={how}" for kind, how in self.enforced.items())
        problems = [self.cgroup_problem] if self.cgroup_problem else []
        return "; ".join([f"isolation: {enforced}", *problems, *self.notes])


def _probe_policy(work_dir: Path) -> SandboxPolicy:
    return SandboxPolicy(
        uid=PROBE_UID, gid=PROBE_UID, work_dir=work_dir, read_only=(), env={"PATH": "/usr/bin:/bin"}
    )


def _probe_bwrap(policy: SandboxPolicy, timeout_s: float) -> str:
    try:
        command = bwrap_command(policy, ["/bin/sh", "-c", f'test "$(id -u)" = {PROBE_UID}'])
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env={})
    except (BubblewrapMissing, OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return (
        ""
        if done.returncode == 0
        else (done.stderr.strip() or f"exit status {done.returncode}")[:300]
    )


def _probe_enter(policy: SandboxPolicy) -> str:
    from theodolite.sandbox.enter import enter_sandbox

    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child)
        os.close(reader)
        try:
            enter_sandbox(policy)
            good = os.getpid() == 1 and os.getuid() == PROBE_UID
            os.write(writer, b"" if good else b"wrong pid or uid")
            os._exit(0)
        except BaseException as error:
            os.write(writer, str(error).encode()[:300])
            os._exit(1)
    os.close(writer)
    try:
        with os.fdopen(reader, "rb") as pipe:
            said = pipe.read().decode(errors="replace")
    finally:
        _, status = os.waitpid(child, 0)
    if said:
        return said
    code = os.waitstatus_to_exitcode(status)
    return "" if code == 0 else f"exit status {code}"


def _probe_cgroups() -> tuple[int | None, tuple[str, ...], str]:
    layout = detect_layout()
    if layout is None:
        return (
            None,
            (),
            "no writable cgroup hierarchy: memory by RLIMIT_AS, processes by RLIMIT_NPROC",
        )
    try:
        group = JobCgroup.create(f"probe-{os.getpid()}", SandboxLimits(), layout=layout)
    except (CgroupUnavailable, OSError) as error:
        return None, (), f"cgroups not writable: {error}"
    group.remove()
    return layout.version, tuple(sorted(layout.controllers)), ""


def probe_isolation(*, timeout_s: float = 10.0) -> Isolation:
    """Try each way in once (as the worker would use it) and the cgroup hierarchies."""
    with tempfile.TemporaryDirectory(prefix="theodolite-probe-") as folder:
        os.chmod(folder, 0o755)
        policy = _probe_policy(Path(folder))
        bwrap_problem = _probe_bwrap(policy, timeout_s)
        enter_problem = _probe_enter(policy)
    version, controllers, cgroup_problem = _probe_cgroups()
    return Isolation(bwrap_problem, enter_problem, version, controllers, cgroup_problem)
