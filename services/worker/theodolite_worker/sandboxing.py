"""Each job's sandbox, as the worker makes it from ``theodolite.sandbox``: what the host allows
(probed once at start), a uid per running job, a cgroup with the job's limits, its folder handed
to that uid, and the read-only paths and device nodes it may see.

Where the host allows no namespaces the worker refuses to start, unless its settings accept
weaker isolation: then jobs run without a sandbox (allow-listed environment only) and the log
says so at start.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from theodolite.sandbox.bwrap import bwrap_command
from theodolite.sandbox.cgroups import CgroupUnavailable, JobCgroup, detect_layout
from theodolite.sandbox.limits import SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy, SandboxUids, hand_over, interpreter_paths
from theodolite.sandbox.probe import Isolation, probe_isolation
from theodolite_worker.sandbox_entry import LoopbackForward
from theodolite_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# The unix sockets a job reaches the world through live here, not in its folder: a socket's path
# must stay under 108 bytes, and job folders sit deep (a test's temporary folder, say).
SOCKETS_ROOT = Path(tempfile.gettempdir()) / "theodolite-jobs"
GPU_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
PREFECT_API_URL = "PREFECT_API_URL"


class WeakIsolationRefused(RuntimeError):
    """The host allows no sandbox and the settings do not accept weaker isolation."""


@dataclass
class JobSandbox:
    """One running job's sandbox: its policy, its cgroup (None where the host has none)."""

    policy: SandboxPolicy
    cgroup: JobCgroup | None
    forwards: tuple[LoopbackForward, ...] = ()

    @property
    def limits(self) -> SandboxLimits:
        return self.policy.limits


def isolation_at_start(settings: WorkerSettings) -> Isolation | None:
    """Probe the host once and log what is enforced; None when the sandbox is switched off.
    Raises WeakIsolationRefused where namespaces are missing, unless that is accepted."""
    if not settings.sandbox:
        log.warning(
            "SANDBOX OFF (THEODOLITE_WORKER_SANDBOX=false): jobs run as the worker's user, "
            "with the allow-listed environment only, no limits and the host's network"
        )
        return None
    isolation = probe_isolation()
    log.info("%s", isolation.describe())
    if not isolation.namespaces:
        missing = "; ".join(p for p in (isolation.bwrap_problem, isolation.enter_problem) if p)
        if not settings.accept_weak_isolation:
            raise WeakIsolationRefused(
                f"this host allows no job sandbox ({missing}); grant the worker namespaces "
                "(see docs/security.md, Isolation) or set "
                "THEODOLITE_WORKER_ACCEPT_WEAK_ISOLATION=true to run jobs uncontained"
            )
        log.error(
            "WEAK ISOLATION ACCEPTED: jobs run WITHOUT a sandbox (%s): no own uid, no private "
            "mounts, no PID or network namespace, no limits; only the environment is filtered",
            missing,
        )
    return isolation


def isolation_report(settings: WorkerSettings, isolation: Isolation | None) -> dict[str, str]:
    """What the heartbeat says this worker's jobs are held to (the operator's view)."""
    if isolation is None:
        return {"sandbox": "off (THEODOLITE_WORKER_SANDBOX=false)"}
    report = {"sandbox": "on" if isolation.namespaces else "no: weak isolation accepted"}
    return {**report, **isolation.enforced}


def gpu_devices(gpus: str | None) -> tuple[Path, ...]:
    """The device nodes of the assigned GPUs (``"0,2"``) and the driver's shared ones."""
    if not gpus:
        return ()
    wanted = [f"/dev/nvidia{index.strip()}" for index in gpus.split(",") if index.strip()]
    return tuple(Path(node) for node in (*wanted, *GPU_SHARED_NODES) if os.path.exists(node))


def inside_url(url: str) -> tuple[str, str, int]:
    """``url`` as a job reaches it through a loopback forwarder on the same port; with the
    service's host and port outside."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    inside = urlunsplit(("http", f"127.0.0.1:{port}", parts.path, parts.query, ""))
    return inside, parts.hostname or "127.0.0.1", port


class Sandboxes:
    """Makes and removes job sandboxes for one worker."""

    def __init__(self, settings: WorkerSettings, isolation: Isolation | None) -> None:
        self.contained = isolation is not None and isolation.namespaces
        self._settings = settings
        has_cgroups = isolation is not None and isolation.cgroup_version is not None
        self._layout = detect_layout() if self.contained and has_cgroups else None
        self._uids = SandboxUids(settings.sandbox_uid_base, settings.slots)
        self._read_only = interpreter_paths()
        self._devices = gpu_devices(settings.gpus)
        self.prefect: tuple[str, str, int] | None = None
        if self.contained and os.environ.get(PREFECT_API_URL):
            # Jobs reach Prefect's api on their own loopback, at the same port; the warm pool
            # reads the URL once at import, so it must see the inside one from the start.
            self.prefect = inside_url(os.environ[PREFECT_API_URL])
            os.environ[PREFECT_API_URL] = self.prefect[0]

    def limits_for(self, requested: Mapping[str, Any] | None) -> SandboxLimits:
        """The worker's default limits with the job's own, each at most this queue's maximum.
        Raises ValueError (pydantic's) for a limit that is not one."""
        settings = self._settings
        return settings.job_limits.with_overrides(requested).clamped(settings.max_limits)

    @staticmethod
    def sockets_dir(job_id: uuid.UUID, attempt: int) -> Path:
        """Where the job's unix sockets go (bound read-only into its sandbox)."""
        return SOCKETS_ROOT / f"{job_id.hex[:16]}-{attempt}"

    def open(
        self,
        *,
        name: str,
        work_dir: Path,
        env: Mapping[str, str],
        limits: SandboxLimits,
        read_only: Sequence[Path] = (),
        forwards: Sequence[LoopbackForward] = (),
    ) -> JobSandbox:
        """A sandbox for one job: a uid of its own, its folder handed to it, its cgroup."""
        uid = self._uids.acquire()
        cgroup: JobCgroup | None = None
        try:
            if self._layout is not None:
                try:
                    cgroup = JobCgroup.create(name, limits, layout=self._layout)
                except (CgroupUnavailable, OSError):
                    log.warning("no cgroup for %s: rlimits only", name, exc_info=True)
            hand_over(work_dir, uid, uid)
            policy = SandboxPolicy(
                uid=uid,
                gid=uid,
                work_dir=work_dir,
                read_only=(*self._read_only, *read_only),
                env=dict(env),
                limits=limits,
                devices=self._devices,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            self._uids.release(uid)
            raise
        return JobSandbox(policy=policy, cgroup=cgroup, forwards=tuple(forwards))

    def close(self, sandbox: JobSandbox) -> None:
        """Kill whatever of the sandbox is left, remove its cgroup, free its uid."""
        try:
            if sandbox.cgroup is not None:
                sandbox.cgroup.remove()
        finally:
            self._uids.release(sandbox.policy.uid)


def cold_command(sandbox: JobSandbox, command: str, cwd: Path) -> list[str]:
    """``bash -c command`` in ``cwd`` inside the sandbox (bwrap), behind its forwarders."""
    entry = [sys.executable, "-m", "theodolite_worker.sandbox_entry", f"--chdir={cwd}"]
    entry += [f"--forward={forward.spec()}" for forward in sandbox.forwards]
    return bwrap_command(
        sandbox.policy, [*entry, "--", "bash", "-c", command], cgroup=sandbox.cgroup
    )
