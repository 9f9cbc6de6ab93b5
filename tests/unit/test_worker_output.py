"""Output edge cases of the process runner (bash path): long lines, a job that closes its output,
characters PostgreSQL text cannot hold."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fixtures.processes import run_batched
from theodolite.events import PROGRESS_LINE_PREFIX
from theodolite_worker.execution import (
    MAX_LINE_BYTES,
    ExecutionOptions,
    parse_progress,
    storable,
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


async def test_nul_in_output_is_escaped_visibly_in_lines_tail_and_log_file(tmp_path: Path) -> None:
    result, lines = await _run("printf 'a\\0b\\n\\0\\n'; printf '\\377ok\\n'", tmp_path)
    assert result.exit_code == 0
    # The four characters \x00 stand where the NUL was; invalid UTF-8 is U+FFFD as before.
    assert lines == ["a\\x00b", "\\x00", "\ufffdok"]
    assert result.log_tail == lines
    assert (tmp_path / "out.log").read_text(encoding="utf-8").splitlines() == lines


def test_lone_surrogates_and_nul_spelled_in_a_progress_report_are_escaped() -> None:
    assert storable("x\udc80y\ud800") == "x\\udc80y\\ud800"
    assert storable("plain \u00e9 text") == "plain \u00e9 text"
    report = parse_progress(PROGRESS_LINE_PREFIX + '{"message": "a\\u0000b", "step": "s\\u0000"}')
    assert report is not None
    assert (report.message, report.step) == ("a\\x00b", "s\\x00")
