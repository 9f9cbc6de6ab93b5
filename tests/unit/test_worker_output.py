"""Output edge cases of the process runner (bash path): long lines, a job that closes its output."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fixtures.processes import run_batched
from theodolite_worker.execution import (
    MAX_LINE_BYTES,
    ExecutionOptions,
)


async def _run(command: str, tmp_path: Path, timeout_s: float | None = 30) -> tuple:
    options = ExecutionOptions(
        flush_interval_s=0.05, batch_lines=10, tail_lines=3, kill_grace_s=1.0
    )
    result, batches = await run_batched(command, tmp_path, options, timeout_s=timeout_s)
    return result, [line for batch in batches for line in batch]


async def test_a_line_longer_than_the_limit_is_cut_not_fatal(tmp_path: Path) -> None:
    size = MAX_LINE_BYTES * 2 + 10
    result, lines = await _run(f"head -c {size} /dev/zero | tr '\\0' x; echo; echo after", tmp_path)
    assert result.exit_code == 0
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 10, 5]
    assert lines[-1] == "after"


async def test_a_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    result, lines = await _run("printf 'one\\r\\ntwo'", tmp_path)
    assert (result.exit_code, lines) == (0, ["one", "two"])


async def test_a_job_that_closed_its_output_still_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    result, lines = await _run("echo bye; exec >&- 2>&-; sleep 60", tmp_path, timeout_s=1)
    assert result.timed_out
    assert lines == ["bye"]
    assert time.monotonic() - started < 10
