"""Runs one entry point command in its own process group and streams its output.

A job process starts either with ``bash -c`` in a new session (any command) or as a warm pool
child (plain Python commands, see ``warm_pool``); both are supervised here the same way: output
lines stream to a log sink, progress lines to a progress sink, and a timeout kills the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from theodolite.events import PROGRESS_LINE_PREFIX, JobProgress
from theodolite_worker.orphans import die_with_parent

if TYPE_CHECKING:
    from theodolite_worker.warm_pool import WarmPool

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 2.0
EXIT_POLL_S = 0.01
READ_CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut into pieces of this size

LogSink = Callable[[list[str]], Awaitable[None]]
ProgressSink = Callable[[JobProgress], Awaitable[None]]


@dataclass
class ExecutionResult:
    exit_code: int
    timed_out: bool
    log_tail: list[str]
    warm: bool = False
    stopped: bool = False  # ended by ``stop`` (cancel, shutdown), not by itself


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


class _BashProcess(JobProcess):
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
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        # bash execs a single simple command, which keeps this: the job dies with the worker.
        preexec_fn=die_with_parent,
    )
    return _BashProcess(process)


def parse_progress(line: str) -> JobProgress | None:
    """The progress report on a ``PROGRESS_LINE_PREFIX`` line; None for any other line."""
    if not line.startswith(PROGRESS_LINE_PREFIX):
        return None
    try:
        return JobProgress.model_validate_json(line[len(PROGRESS_LINE_PREFIX) :])
    except ValidationError:
        return None  # malformed: an ordinary log line


class _Output:
    """Collects a job's lines: log lines to the file, tail and pending batch; progress apart."""

    def __init__(self, log_file: Path, tail_lines: int, *, progress: bool) -> None:
        self.pending: list[str | JobProgress] = []
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._progress = progress
        self._file = log_file.open("a", encoding="utf-8")

    def add(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        report = parse_progress(line) if self._progress else None
        if report is not None:
            # Progress is a state: of reports with no log line between, the latest will do.
            if self.pending and isinstance(self.pending[-1], JobProgress):
                self.pending[-1] = report
            else:
                self.pending.append(report)
            return
        self.pending.append(line)
        self.tail.append(line)
        self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


async def _read_output(stream: asyncio.StreamReader, on_line: Callable[[bytes], None]) -> None:
    def cut(data: bytes) -> bytes:
        while len(data) > MAX_LINE_BYTES:
            on_line(data[:MAX_LINE_BYTES])
            data = data[MAX_LINE_BYTES:]
        return data

    buffer = b""
    while chunk := await stream.read(READ_CHUNK_BYTES):
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            on_line(cut(line))
        buffer = cut(buffer)
    if buffer:
        on_line(buffer)


async def _terminate(process: JobProcess, kill_grace_s: float) -> None:
    process.kill_group(signal.SIGTERM)
    grace_end = time.monotonic() + kill_grace_s
    # returncode has no event to wait on (see supervise): poll it.
    while process.returncode is None and time.monotonic() < grace_end:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    process.kill_group(signal.SIGKILL)


async def supervise(
    process: JobProcess,
    *,
    timeout_s: float | None,
    log_sink: LogSink,
    log_file: Path,
    flush_interval_s: float,
    batch_lines: int,
    tail_lines: int,
    kill_grace_s: float,
    progress_sink: ProgressSink | None = None,
    stop: asyncio.Event | None = None,
) -> ExecutionResult:
    """Stream the job's output until it ended and its output closed; enforce the timeout, and
    stop the job's whole process group when ``stop`` is set."""
    try:
        output = _Output(log_file, tail_lines, progress=progress_sink is not None)
    except BaseException:
        process.kill_group(signal.SIGKILL)
        await process.close()
        raise
    reader = asyncio.create_task(_read_output(process.stdout, output.add))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = False
    stopped = False

    async def flush() -> None:
        items, output.pending = output.pending, []
        while items:
            if isinstance(items[0], JobProgress):
                assert progress_sink is not None
                await progress_sink(items.pop(0))
                continue
            count = 1
            while count < min(len(items), batch_lines) and isinstance(items[count], str):
                count += 1
            batch = [item for item in items[:count] if isinstance(item, str)]
            del items[:count]
            await log_sink(batch)

    try:
        # Poll returncode rather than await wait(): before Python 3.12, wait() also waits for the
        # pipes to close, which a background child of the script can hold open forever.
        exited_at: float | None = None
        exit_polls = 0
        while True:
            if reader.done():
                # Output closed: the exit follows at once, unless the script closed its stdout.
                exit_polls += 1
                await asyncio.sleep(EXIT_POLL_S if exit_polls < 100 else flush_interval_s)
            else:
                await asyncio.wait({reader}, timeout=flush_interval_s)
            await flush()
            returncode = process.returncode
            if reader.done() and (returncode is not None or reader.exception() is not None):
                break
            now = time.monotonic()
            if returncode is not None:
                exited_at = now if exited_at is None else exited_at
                if now - exited_at > ORPHAN_GRACE_S:
                    # The script exited but something it started still holds its output open.
                    process.kill_group(signal.SIGKILL)
            elif stop is not None and stop.is_set() and not stopped:
                stopped = True
                await _terminate(process, kill_grace_s)
                deadline = None
            elif deadline is not None and now > deadline:
                timed_out = True
                await _terminate(process, kill_grace_s)
                deadline = None
        await reader
        exit_code = process.returncode
        assert exit_code is not None
    finally:
        # Children that outlived the main process would hold the job's resources: end them too.
        process.kill_group(signal.SIGKILL)
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        output.close()
        await process.close()
    await flush()
    return ExecutionResult(
        exit_code=exit_code,
        timed_out=timed_out,
        log_tail=list(output.tail),
        warm=process.warm,
        stopped=stopped,
    )


async def run_command(
    command: str,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float | None,
    log_sink: LogSink,
    log_file: Path,
    flush_interval_s: float,
    batch_lines: int,
    tail_lines: int,
    kill_grace_s: float,
    progress_sink: ProgressSink | None = None,
    warm_pool: WarmPool | None = None,
    stop: asyncio.Event | None = None,
) -> ExecutionResult:
    """Run ``command`` in its own process group and stream its output; stderr joins stdout.

    Plain Python commands start in ``warm_pool`` when it is ready, anything else with bash.
    Log lines reach ``log_sink`` in batches, at least every ``flush_interval_s``; progress lines
    (``PROGRESS_LINE_PREFIX`` + a JSON ``JobProgress``) reach ``progress_sink`` instead, when one
    is given. On timeout the whole group gets SIGTERM, then SIGKILL after ``kill_grace_s``.
    """
    process = None
    if warm_pool is not None:
        process = await warm_pool.spawn(command, cwd=cwd, env=env)
    if process is None:
        process = await start_bash(command, cwd=cwd, env=env)
    log.info("job process %d started %s", process.pid, "warm" if process.warm else "cold")
    return await supervise(
        process,
        timeout_s=timeout_s,
        log_sink=log_sink,
        log_file=log_file,
        flush_interval_s=flush_interval_s,
        batch_lines=batch_lines,
        tail_lines=tail_lines,
        kill_grace_s=kill_grace_s,
        progress_sink=progress_sink,
        stop=stop,
    )
