"""Starting, losing and stopping the warm pool: jobs always run, warm or cold."""

from __future__ import annotations

import asyncio
import multiprocessing.forkserver
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from theodolite_worker.execution import ExecutionOptions, ExecutionResult, JobCommand, JobLauncher
from theodolite_worker.warm_pool import WarmPool


async def _run(pool: WarmPool, tmp_path: Path) -> ExecutionResult:
    (tmp_path / "run.py").write_text("print('ran')\n")

    async def sink(lines: list[str]) -> None:
        assert lines == ["ran"]

    launcher = JobLauncher(
        ExecutionOptions(flush_interval_s=0.05, batch_lines=10, tail_lines=3, kill_grace_s=1.0),
        warm_pool=pool,
    )
    job = JobCommand(
        "python run.py",
        cwd=tmp_path,
        env=dict(os.environ),
        log_file=tmp_path / "out.log",
        timeout_s=30,
    )
    return await (await launcher.start(job, log_sink=sink)).wait()


def _importable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Here and in the forkserver (which takes PYTHONPATH, not the parent's sys.path)."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))


def _server_pid() -> int | None:
    return multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]


async def test_a_pool_that_cannot_start_leaves_jobs_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not an ImportError: the forkserver itself dies of it.
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('no')\n")
    _importable(tmp_path, monkeypatch)
    pool = WarmPool(["json", "explodes_on_import"])
    try:
        assert not pool.start()
        assert not pool.ready
        result = await _run(pool, tmp_path)
        assert (result.exit_code, result.warm) == (0, False)
    finally:
        pool.shutdown()
    assert _server_pid() is None

    # The process may start another pool after that.
    pool = WarmPool(["json"])
    try:
        assert pool.start()
        assert (await _run(pool, tmp_path)).warm
    finally:
        pool.shutdown()


def test_one_pool_per_process() -> None:
    first, second = WarmPool(["json"]), WarmPool(["json"])
    try:
        assert first.start()
        with pytest.raises(RuntimeError, match="already started"):
            second.start()
    finally:
        first.shutdown()
        second.shutdown()
    assert _server_pid() is None


def test_stopping_a_pool_that_is_still_importing_is_quick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(30)\n")
    _importable(tmp_path, monkeypatch)
    pool = WarmPool(["slow_to_import"])
    outcome: list[bool] = []
    starter = threading.Thread(target=lambda: outcome.append(pool.start()))
    starter.start()
    while _server_pid() is None:  # noqa: ASYNC110 - a plain thread, not a task
        time.sleep(0.01)
    time.sleep(0.2)
    began = time.monotonic()
    pool.shutdown()
    starter.join(10)
    assert outcome == [False]
    assert time.monotonic() - began < 5
    assert _server_pid() is None


async def test_a_dead_forkserver_is_replaced_and_jobs_run_cold_meanwhile(tmp_path: Path) -> None:
    pool = WarmPool(["json"])
    try:
        assert pool.start()
        pid = _server_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)

        result = await _run(pool, tmp_path)
        assert (result.exit_code, result.warm) == (0, False)

        for _ in range(200):
            if pool.ready:
                break
            await asyncio.sleep(0.05)
        assert pool.ready
        assert _server_pid() not in (None, pid)
        result = await _run(pool, tmp_path)
        assert (result.exit_code, result.warm) == (0, True)
    finally:
        pool.shutdown()
