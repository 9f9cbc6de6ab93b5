"""Runs one entry point command in its own process group and streams its output.

``JobLauncher.start`` starts the command (in the warm pool when it can, else with ``bash -c``)
and returns a ``JobExecution``: a handle with ``wait``, ``cancel`` and ``status``, like MLflow's
``SubmittedRun``. While it runs, a background task supervises it the same way whichever way it
started: output lines stream to a log sink in batches, progress lines to a progress sink, and a
timeout or a cancel kills the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from theodolite.events import PROGRESS_LINE_PREFIX, JobProgress
from theodolite_worker.process import JobProcess, ProcessSpawner, start_bash, start_command
from theodolite_worker.sandboxing import JobSandbox, cold_command
from theodolite_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 2.0
EXIT_POLL_S = 0.01
READ_CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut into pieces of this size

# PostgreSQL text cannot hold NUL, nor a lone UTF-16 surrogate (UTF-8 cannot encode one: a
# decoder's ``surrogateescape`` makes them). One such character in a job's output made the api
# refuse the event, and its retries held every job's events up. Each is written as its Python
# escape instead, visibly: U+0000 becomes the four characters ``\x00``, a lone U+DC80 the six
# characters ``\udc80``. Bytes that are not UTF-8 were U+FFFD already (decoded with
# ``errors="replace"``).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\x00``, ``\\udc80``), storable as
    PostgreSQL text and encodable as UTF-8."""
    return _UNSTORABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


LogSink = Callable[[list[str]], Awaitable[None]]
ProgressSink = Callable[[JobProgress], Awaitable[None]]


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exited with status 0
    FAILED = "failed"  # any other exit, or its supervision failed
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"  # ended by ``cancel`` (a user's cancel, a worker's shutdown)


@dataclass
class ExecutionResult:
    exit_code: int
    timed_out: bool
    log_tail: list[str]
    warm: bool = False
    stopped: bool = False  # ended by ``cancel`` (cancel, shutdown), not by itself
    breach: str | None = None  # ended by ``end_for_breach``: the limit it crossed, in words

    @property
    def status(self) -> ExecutionStatus:
        if self.breach is not None:
            return ExecutionStatus.FAILED
        if self.stopped:
            return ExecutionStatus.STOPPED
        if self.timed_out:
            return ExecutionStatus.TIMED_OUT
        return ExecutionStatus.SUCCEEDED if self.exit_code == 0 else ExecutionStatus.FAILED


@dataclass(frozen=True)
class ExecutionOptions:
    """How output is batched and kept, and how long a stopped job may take to end."""

    flush_interval_s: float = 0.25  # longest a log line waits to be sent
    batch_lines: int = 200  # most lines in one log batch
    tail_lines: int = 50  # lines the result keeps
    kill_grace_s: float = 5.0  # SIGTERM to SIGKILL

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ExecutionOptions:
        return cls(
            flush_interval_s=settings.log_flush_interval_s,
            batch_lines=settings.log_batch_lines,
            tail_lines=settings.log_tail_lines,
            kill_grace_s=settings.kill_grace_s,
        )


@dataclass(frozen=True)
class JobCommand:
    """What to run: the command (bash syntax), where, with what environment, for how long."""

    command: str
    cwd: Path
    env: dict[str, str]
    log_file: Path  # every log line is appended here too
    timeout_s: float | None = None
    sandbox: JobSandbox | None = None  # where it runs (None: as the worker's user)
    cold: bool = False  # never in the warm pool (a declared environment's own interpreter)


def parse_progress(line: str) -> JobProgress | None:
    """The progress report on a ``PROGRESS_LINE_PREFIX`` line; None for any other line."""
    if not line.startswith(PROGRESS_LINE_PREFIX):
        return None
    try:
        report = JobProgress.model_validate_json(line[len(PROGRESS_LINE_PREFIX) :])
    except ValidationError:
        return None  # malformed: an ordinary log line
    # A JSON string may spell NUL as an escape (``\u0000``): escaped like a log line's.
    texts = {"message": report.message, "step": report.step}
    return report.model_copy(update={k: storable(v) for k, v in texts.items() if v is not None})


class _Output:
    """Collects a job's lines: log lines to the file, tail and pending batch; progress apart."""

    def __init__(self, log_file: TextIO, tail_lines: int, *, progress: bool) -> None:
        self.pending: list[str | JobProgress] = []
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._progress = progress
        self._file = log_file

    def add(self, raw: bytes) -> None:
        line = storable(raw.decode(errors="replace").rstrip("\r"))
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
    # returncode has no event to wait on (see _supervise): poll it.
    while process.returncode is None and time.monotonic() < grace_end:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    process.kill_group(signal.SIGKILL)


class JobExecution:
    """A started job, supervised in the background until it ended and its output closed."""

    def __init__(
        self,
        process: JobProcess,
        job: JobCommand,
        options: ExecutionOptions,
        *,
        log_sink: LogSink,
        progress_sink: ProgressSink | None = None,
    ) -> None:
        self.pid = process.pid
        self.warm = process.warm
        self._process = process
        self._job = job
        self._options = options
        self._log_sink = log_sink
        self._progress_sink = progress_sink
        self._stop = asyncio.Event()
        self._breach: str | None = None
        self._supervisor: asyncio.Task[ExecutionResult] | None = None

    @classmethod
    def supervise(
        cls,
        process: JobProcess,
        job: JobCommand,
        options: ExecutionOptions,
        *,
        log_sink: LogSink,
        progress_sink: ProgressSink | None = None,
    ) -> JobExecution:
        """A handle on ``process``, supervised from now on by a task of the running loop."""
        execution = cls(process, job, options, log_sink=log_sink, progress_sink=progress_sink)
        execution._supervisor = asyncio.create_task(
            execution._supervise(), name=f"job-process-{process.pid}"
        )
        return execution

    def cancel(self) -> None:
        """Stop the job: SIGTERM to its group, SIGKILL after the grace; ``wait`` says stopped."""
        self._stop.set()

    def end_for_breach(self, reason: str) -> None:
        """Kill the job at once (no grace: a fork bomb would use it); ``wait`` says failed with
        ``reason`` (the first one given)."""
        if self._breach is None:
            self._breach = reason
        self._stop.set()

    def status(self) -> ExecutionStatus:
        assert self._supervisor is not None, "made by JobExecution.supervise"
        if not self._supervisor.done():
            return ExecutionStatus.RUNNING
        if self._supervisor.cancelled() or self._supervisor.exception() is not None:
            return ExecutionStatus.FAILED
        return self._supervisor.result().status

    async def wait(self) -> ExecutionResult:
        """The result, once the job ended and all its output was sent."""
        # Not shielded on purpose: cancelling the waiter cancels the supervision, which kills
        # the group, so a job never outlives the code that waits for it.
        assert self._supervisor is not None, "made by JobExecution.supervise"
        return await self._supervisor

    async def _flush(self, output: _Output) -> None:
        items, output.pending = output.pending, []
        while items:
            head = items[0]
            if isinstance(head, JobProgress):
                assert self._progress_sink is not None
                del items[0]
                await self._progress_sink(head)
                continue
            count = 1
            while count < min(len(items), self._options.batch_lines) and isinstance(
                items[count], str
            ):
                count += 1
            batch = [item for item in items[:count] if isinstance(item, str)]
            del items[:count]
            await self._log_sink(batch)

    async def _supervise(self) -> ExecutionResult:
        process, options = self._process, self._options
        try:
            log_file = self._job.log_file.open("a", encoding="utf-8")
        except BaseException:
            process.kill_group(signal.SIGKILL)
            await process.close()
            raise
        with log_file:
            output = _Output(log_file, options.tail_lines, progress=self._progress_sink is not None)
            exit_code, timed_out, stopped = await self._watch(output)
        await self._flush(output)
        return ExecutionResult(
            exit_code=exit_code,
            timed_out=timed_out,
            log_tail=list(output.tail),
            warm=process.warm,
            stopped=stopped,
            breach=self._breach,
        )

    async def _watch(self, output: _Output) -> tuple[int, bool, bool]:
        """Stream output until the job ended; enforce the timeout and the stop request."""
        process, options = self._process, self._options
        reader = asyncio.create_task(_read_output(process.stdout, output.add))
        timeout_s = self._job.timeout_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        timed_out = stopped = False
        try:
            # Poll returncode rather than await wait(): before Python 3.12, wait() also waits for
            # the pipes to close, which a background child of the script can hold open forever.
            exited_at: float | None = None
            exit_polls = 0
            while True:
                if reader.done():
                    # Output closed: the exit follows at once, unless the script closed stdout.
                    exit_polls += 1
                    await asyncio.sleep(
                        EXIT_POLL_S if exit_polls < 100 else options.flush_interval_s
                    )
                else:
                    await asyncio.wait({reader}, timeout=options.flush_interval_s)
                await self._flush(output)
                returncode = process.returncode
                if reader.done() and (returncode is not None or reader.exception() is not None):
                    break
                now = time.monotonic()
                if returncode is not None:
                    exited_at = now if exited_at is None else exited_at
                    if now - exited_at > ORPHAN_GRACE_S:
                        # The script exited but something it started still holds its output.
                        process.kill_group(signal.SIGKILL)
                elif self._stop.is_set() and not stopped:
                    stopped = True
                    if self._breach is not None:
                        process.kill_group(signal.SIGKILL)
                    else:
                        await _terminate(process, options.kill_grace_s)
                    deadline = None
                elif deadline is not None and now > deadline:
                    timed_out = True
                    await _terminate(process, options.kill_grace_s)
                    deadline = None
            await reader
            exit_code = process.returncode
            assert exit_code is not None
        finally:
            # Children that outlived the main process would hold the job's resources: end them.
            process.kill_group(signal.SIGKILL)
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await process.close()
        return exit_code, timed_out, stopped


class JobLauncher:
    """Starts job commands: plain Python ones in the warm pool when it is ready, else bash."""

    def __init__(self, options: ExecutionOptions, *, warm_pool: ProcessSpawner | None = None):
        self.options = options
        self._warm_pool = warm_pool

    async def start(
        self, job: JobCommand, *, log_sink: LogSink, progress_sink: ProgressSink | None = None
    ) -> JobExecution:
        """The job started in its own process group (stderr joins stdout), supervised."""
        # Log lines reach ``log_sink`` in batches, at least every ``flush_interval_s``; progress
        # lines (``PROGRESS_LINE_PREFIX`` + a JSON ``JobProgress``) reach ``progress_sink``
        # instead when one is given, else they are log lines like any other.
        process = None
        if self._warm_pool is not None and not job.cold:
            process = await self._warm_pool.spawn(
                job.command, cwd=job.cwd, env=job.env, sandbox=job.sandbox
            )
        if process is None and job.sandbox is not None:
            argv = cold_command(job.sandbox, job.command, job.cwd)
            process = await start_command(argv, cwd=job.cwd, env={})  # bwrap sets its own
        elif process is None:
            process = await start_bash(job.command, cwd=job.cwd, env=job.env)
        log.info("job process %d started %s", process.pid, "warm" if process.warm else "cold")
        return JobExecution.supervise(
            process, job, self.options, log_sink=log_sink, progress_sink=progress_sink
        )
