"""Runs one entry point command in its own process group and streams its output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ORPHAN_GRACE_S = 2.0

LogSink = Callable[[list[str]], Awaitable[None]]


@dataclass
class ExecutionResult:
    exit_code: int
    timed_out: bool
    log_tail: list[str]


async def _read_lines(
    stream: asyncio.StreamReader, pending: list[str], tail: deque[str], log_file: Path
) -> None:
    with log_file.open("a", encoding="utf-8") as out:
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip("\r\n")
            pending.append(line)
            tail.append(line)
            out.write(line + "\n")


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


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
) -> ExecutionResult:
    """Run ``command`` with bash in a new session (its own process group); stderr joins stdout.

    Log lines reach ``log_sink`` in batches, at least every ``flush_interval_s``. On timeout the
    whole group gets SIGTERM, then SIGKILL after ``kill_grace_s``.
    """
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
    )
    assert process.stdout is not None
    pending: list[str] = []
    tail: deque[str] = deque(maxlen=tail_lines)
    reader = asyncio.create_task(_read_lines(process.stdout, pending, tail, log_file))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = False

    async def flush() -> None:
        while pending:
            batch = pending[:batch_lines]
            del pending[:batch_lines]
            await log_sink(batch)

    # Poll returncode rather than await wait(): before Python 3.12, wait() also waits for the
    # pipes to close, which a background child of the script can hold open forever.
    exited_at: float | None = None
    while not reader.done():
        await asyncio.wait({reader}, timeout=flush_interval_s)
        await flush()
        if process.returncode is not None and exited_at is None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > ORPHAN_GRACE_S:
            # The script exited but something it started still holds its output open.
            _kill_group(process.pid, signal.SIGKILL)
        if deadline is not None and time.monotonic() > deadline and process.returncode is None:
            timed_out = True
            _kill_group(process.pid, signal.SIGTERM)
            grace_end = time.monotonic() + kill_grace_s
            # returncode has no event to wait on (see above): poll it.
            while process.returncode is None and time.monotonic() < grace_end:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            _kill_group(process.pid, signal.SIGKILL)
            deadline = None
    await reader
    exit_code = process.returncode if process.returncode is not None else await process.wait()
    # Children that outlived the main process would hold the job's resources: end them too.
    _kill_group(process.pid, signal.SIGKILL)
    await flush()
    return ExecutionResult(exit_code=exit_code, timed_out=timed_out, log_tail=list(tail))
