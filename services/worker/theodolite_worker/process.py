"""A started job process, however it started: the leader of its own process group.

Both starters meet here: ``bash -c`` in a new session (any command) and the warm pool's
forkserver children (``warm_pool``). ``execution`` supervises either through ``JobProcess`` and
asks a ``ProcessSpawner`` (the warm pool) first, so neither of them imports the other.
The warm pool's forkserver imports this module: the standard library only, nothing computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from theodolite_worker.orphans import die_with_parent

if TYPE_CHECKING:
    from theodolite_worker.sandboxing import JobSandbox


class JobProcess(ABC):
    """A started job: leader of its own process group, its stdout+stderr on ``stdout``."""

    warm = False

    def __init__(self, pid: int, stdout: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stdout = stdout

    @property
    @abstractmethod
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), None while it runs."""

    def kill_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    @abstractmethod
    async def close(self) -> None:
        """Release what the parent holds for it (after it exited)."""


class ProcessSpawner(Protocol):
    """Starts some commands faster than bash would (the warm pool); None: use bash."""

    async def spawn(
        self, command: str, *, cwd: Path, env: dict[str, str], sandbox: JobSandbox | None = None
    ) -> JobProcess | None:
        """The job started (in ``sandbox`` when given), or None when this spawner cannot start
        this command now."""
        ...


class BashProcess(JobProcess):
    """A job started with ``bash -c``; asyncio owns its pipe and reaps it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        super().__init__(process.pid, process.stdout)
        self._process = process

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def close(self) -> None:
        """Nothing to do: asyncio closes the pipe and reaps the process itself."""


async def start_bash(command: str, *, cwd: Path, env: dict[str, str]) -> JobProcess:
    """``bash -c command`` in a new session (its own process group); stderr joins stdout."""
    return await start_command(["bash", "-c", command], cwd=cwd, env=env)


async def start_command(argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> JobProcess:
    """``argv`` in a new session (its own process group); stderr joins stdout."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        # Kept across exec (bash execs a single simple command; bwrap's sandbox dies with bwrap):
        # the job dies with the worker.
        preexec_fn=functools.partial(die_with_parent, os.getpid()),
    )
    return BashProcess(process)
