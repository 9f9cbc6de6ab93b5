"""The worker's process runner, on real subprocesses."""

import asyncio
import time
from pathlib import Path

import pytest

from tests.fixtures.processes import ignore_lines, process_gone, run_batched, shell_job
from theodolite_worker.execution import ExecutionOptions, ExecutionStatus, JobLauncher


async def _run(command: str, tmp_path: Path, timeout_s: float | None = None) -> tuple:
    options = ExecutionOptions(flush_interval_s=0.05, batch_lines=3, tail_lines=4, kill_grace_s=1.0)
    return await run_batched(command, tmp_path, options, timeout_s=timeout_s)


async def test_output_is_streamed_in_bounded_batches_with_a_tail(tmp_path: Path) -> None:
    result, batches = await _run(
        "for i in 1 2 3 4 5 6 7; do echo line $i; done; echo err >&2; exit 4", tmp_path
    )
    assert result.exit_code == 4
    assert not result.timed_out
    lines = [line for batch in batches for line in batch]
    assert lines == [f"line {i}" for i in range(1, 8)] + ["err"]
    assert all(len(batch) <= 3 for batch in batches)
    assert result.log_tail == ["line 5", "line 6", "line 7", "err"]
    assert (tmp_path / "out.log").read_text().splitlines() == lines


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    result, _ = await _run(
        f"sleep 60 & echo $! > {marker}; echo started; wait", tmp_path, timeout_s=1
    )
    assert result.timed_out
    assert time.monotonic() - started < 10
    await asyncio.sleep(0.2)
    assert process_gone(int(marker.read_text()))


async def test_a_background_child_holding_stdout_does_not_hang_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    result, batches = await _run("(sleep 60; echo late) & echo main done", tmp_path)
    assert result.exit_code == 0
    assert time.monotonic() - started < 10
    assert [line for batch in batches for line in batch] == ["main done"]


async def test_the_handle_says_running_then_stopped_after_a_cancel(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    first_line = asyncio.Event()

    async def sink(lines: list[str]) -> None:
        first_line.set()

    launcher = JobLauncher(ExecutionOptions(flush_interval_s=0.05, kill_grace_s=1.0))
    job = shell_job(f"sleep 60 & echo $! > {marker}; echo started; wait", tmp_path)
    execution = await launcher.start(job, log_sink=sink)
    await first_line.wait()
    assert execution.status() is ExecutionStatus.RUNNING
    assert not execution.warm and execution.pid > 0
    execution.cancel()
    result = await execution.wait()
    assert (result.stopped, result.timed_out) == (True, False)
    assert execution.status() is ExecutionStatus.STOPPED
    await asyncio.sleep(0.2)
    assert process_gone(execution.pid) and process_gone(int(marker.read_text()))


@pytest.mark.parametrize(
    ("command", "timeout_s", "status"),
    [
        ("true", None, ExecutionStatus.SUCCEEDED),
        ("exit 3", None, ExecutionStatus.FAILED),
        ("sleep 60", 0.5, ExecutionStatus.TIMED_OUT),
    ],
)
async def test_the_handle_reports_how_the_job_ended(
    tmp_path: Path, command: str, timeout_s: float | None, status: ExecutionStatus
) -> None:
    launcher = JobLauncher(ExecutionOptions(flush_interval_s=0.05, kill_grace_s=1.0))
    execution = await launcher.start(
        shell_job(command, tmp_path, timeout_s=timeout_s), log_sink=ignore_lines
    )
    result = await execution.wait()
    assert execution.status() is status is result.status


async def test_cancelling_the_waiter_kills_the_job(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def sink(lines: list[str]) -> None:
        started.set()

    launcher = JobLauncher(ExecutionOptions(flush_interval_s=0.05, kill_grace_s=1.0))
    job = shell_job("echo started; sleep 60", tmp_path)
    execution = await launcher.start(job, log_sink=sink)
    waiter = asyncio.create_task(execution.wait())
    await started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert execution.status() is ExecutionStatus.FAILED  # no result: its supervision ended
    await asyncio.sleep(0.2)
    assert process_gone(execution.pid)
