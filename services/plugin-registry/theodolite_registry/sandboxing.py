"""Where a plugin's validation runs: a bubblewrap sandbox of its own (``theodolite.sandbox``), or,
only where the host allows no sandbox and a setting accepts it, a plain subprocess.

The sandbox has its own unprivileged uid (one per running validation), no network, an
environment of PATH, HOME and LANG only, the interpreter and its site-packages read-only and
nothing of the host writable but the validation's work folder. The weaker fallback keeps the
empty environment, the rlimits and its own session, and says in the log and in ``/readyz`` that
it is weaker.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from theodolite.sandbox.bwrap import bwrap_command
from theodolite.sandbox.environment import plugin_environment
from theodolite.sandbox.limits import SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy, SandboxUids, hand_over, interpreter_paths
from theodolite.web.errors import DomainError

log = logging.getLogger(__name__)
SETTING = "THEODOLITE_REGISTRY_VALIDATION_ACCEPT_WEAK_ISOLATION"
# The interpreter, always: what the probe and every validation start with.
PYTHON = (sys.executable, "-I", "-B")
UID_COUNT = 1000


class IsolationRefused(DomainError, status_code=503, title="Validation unavailable"):
    """This host cannot sandbox a plugin's validation and no setting accepts weaker isolation."""


@dataclass(frozen=True)
class Isolation:
    sandboxed: bool
    description: str  # what is enforced, or why not


def validation_environment() -> dict[str, str]:
    """What the interpreter needs and nothing of the registry's own settings."""
    return {**plugin_environment(), "PYTHONDONTWRITEBYTECODE": "1"}


class ValidationSandbox:
    """Builds each validation's command line; knows (after ``probe``) what the host allows."""

    def __init__(self, *, accept_weak_isolation: bool = False, uid_base: int = 200_000) -> None:
        self._accept_weak = accept_weak_isolation
        # A range of its own: a job of a worker on the same host never shares a validation's uid.
        self._uids = SandboxUids(uid_base, UID_COUNT)
        self.isolation: Isolation | None = None

    def probe(self) -> Isolation:
        """Start one sandbox (an interpreter that does nothing) and remember whether it ran."""
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="theodolite-probe-") as folder:
            work = Path(folder) / "work"
            work.mkdir(mode=0o711)  # bwrap, without CAP_DAC_OVERRIDE, must enter it
            try:
                uid = self._uids.acquire()
                try:
                    hand_over(work, uid, uid)
                    command = bwrap_command(self._policy(work, uid, ()), [*PYTHON, "-c", "pass"])
                    ran = subprocess.run(command, capture_output=True, text=True, timeout=30)
                finally:
                    self._uids.release(uid)
                problem = None if ran.returncode == 0 else ran.stderr.strip()[-300:]
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
                problem = str(exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if problem is None:
            self.isolation = Isolation(
                True,
                "plugin validation sandboxed (bubblewrap: own uid, no network, empty "
                f"environment, read-only interpreter; started in {elapsed_ms:.0f} ms)",
            )
            log.info("%s", self.isolation.description)
        else:
            accepted = "accepted" if self._accept_weak else "refused"
            self.isolation = Isolation(
                False,
                f"plugin validation NOT sandboxed: {problem}; weaker isolation (empty "
                f"environment, rlimits, own session, the registry's uid) {accepted} by {SETTING}",
            )
            log.warning("%s", self.isolation.description)
        return self.isolation

    def check(self) -> Isolation:
        """The isolation validations get; IsolationRefused when the host allows none."""
        isolation = self.isolation or self.probe()
        if not isolation.sandboxed and not self._accept_weak:
            raise IsolationRefused(
                "plugin validation is unavailable: this host cannot sandbox it and "
                f"{SETTING} is not set"
            )
        return isolation

    def acquire_uid(self) -> int | None:
        """A uid of its own for one validation (None without a sandbox)."""
        return self._uids.acquire() if self.check().sandboxed else None

    def release_uid(self, uid: int | None) -> None:
        if uid is not None:
            self._uids.release(uid)

    def command(
        self,
        work: Path,
        uid: int | None,
        argv: Sequence[str],
        *,
        result_fd: int,
        limits: SandboxLimits,
    ) -> list[str]:
        """The command line of one validation whose folder is ``work``."""
        if uid is None:
            return list(argv)
        hand_over(work, uid, uid)
        return bwrap_command(self._policy(work, uid, (result_fd,), limits), argv)

    @staticmethod
    def _policy(
        work: Path, uid: int, pass_fds: tuple[int, ...], limits: SandboxLimits | None = None
    ) -> SandboxPolicy:
        return SandboxPolicy(
            uid=uid,
            gid=uid,
            work_dir=work,
            read_only=interpreter_paths(),
            env=validation_environment(),
            limits=limits or SandboxLimits(),
            network=False,
            hostname="plugin-validation",
            pass_fds=pass_fds,
        )


def weak_preexec(limits: SandboxLimits) -> None:
    """In the weaker fallback's child before exec: rlimits and a session of its own."""
    import resource

    if limits.memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    if limits.cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    if limits.file_size_bytes is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
    os.setsid()
