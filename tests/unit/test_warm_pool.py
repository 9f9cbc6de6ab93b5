"""The warm pool on real processes: a forkserver preloading only cheap modules."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.processes import process_gone, shell_job
from theodolite.events import PROGRESS_LINE_PREFIX, JobProgress
from theodolite_worker.execution import ExecutionOptions, ExecutionResult, JobLauncher
from theodolite_worker.warm_child import WarmCommand
from theodolite_worker.warm_command import parse_warm_command
from theodolite_worker.warm_pool import WarmPool


@pytest.fixture(scope="module")
def pool() -> Iterator[WarmPool]:
    pool = WarmPool(["json", "theodolite_no_such_module"])
    assert pool.start()
    yield pool
    pool.shutdown()


@dataclass
class Run:
    result: ExecutionResult
    lines: list[str] = field(default_factory=list)
    progress: list[JobProgress] = field(default_factory=list)


async def _run(
    command: str,
    cwd: Path,
    pool: WarmPool | None,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float | None = 30,
) -> Run:
    run = Run(result=ExecutionResult(exit_code=-1, timed_out=False, log_tail=[]))

    async def sink(lines: list[str]) -> None:
        run.lines.extend(lines)

    async def progress(report: JobProgress) -> None:
        run.progress.append(report)

    launcher = JobLauncher(
        ExecutionOptions(flush_interval_s=0.05, batch_lines=50, tail_lines=5, kill_grace_s=1.0),
        warm_pool=pool,
    )
    job = shell_job(command, cwd, env=env, timeout_s=timeout_s)
    execution = await launcher.start(job, log_sink=sink, progress_sink=progress)
    run.result = await execution.wait()
    return run


def _script(folder: Path, name: str, code: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(code))


def test_the_pool_reports_what_it_preloaded_and_skipped(pool: WarmPool) -> None:
    assert pool.ready
    assert pool.preloaded == ["json"]
    assert pool.skipped == ["theodolite_no_such_module"]
    assert pool.startup_s is not None and pool.startup_s < 30


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python run.py --eps 0.1 'a b'", WarmCommand("script", "run.py", ("--eps", "0.1", "a b"))),
        ("python3 -u sub/run.py", WarmCommand("script", "sub/run.py", ())),
        ("python -m pkg.tool -x 1", WarmCommand("module", "pkg.tool", ("-x", "1"))),
        (
            "theodolite run-graph graph.yaml -P eps=0.1",
            WarmCommand("module", "theodolite", ("run-graph", "graph.yaml", "-P", "eps=0.1")),
        ),
        (
            "python run.py --text 'a;b|c>d $(x) `y`'",
            WarmCommand("script", "run.py", ("--text", "a;b|c>d $(x) `y`")),
        ),
        ("python run.py; echo done", None),
        ("python run.py && echo done", None),
        ("python run.py || true", None),
        ("python run.py | tee out", None),
        ("python run.py > out.txt", None),
        ("python run.py < in.txt", None),
        ("python run.py &", None),
        ("python run.py $HOME", None),
        ('python run.py "$HOME"', None),
        ("python run.py $(pwd)", None),
        ("python run.py `pwd`", None),
        ("python run.py *.csv", None),
        ("python run.py\necho again", None),
        ("FOO=1 python run.py", None),
        ("python -c 'print(1)'", None),
        ("python", None),
        ("python run.sh", None),
        ("bash run.sh", None),
        ("python 'unclosed", None),
    ],
)
def test_only_plain_python_commands_start_warm(command: str, expected: WarmCommand | None) -> None:
    assert parse_warm_command(command) == expected


async def test_a_script_gets_args_env_cwd_and_interleaved_output(
    pool: WarmPool, tmp_path: Path
) -> None:
    _script(
        tmp_path,
        "job/run.py",
        """
        import os, sys, threading, time, atexit
        print("args", sys.argv[1:])
        print("err 1", file=sys.stderr)
        print("env", os.environ["JOB_VALUE"], os.environ.get("ONLY_IN_WORKER"))
        print("err 2", file=sys.stderr)
        print("cwd", os.getcwd())
        print("path0", sys.path[0])
        print("name", __name__)
        atexit.register(lambda: print("atexit ran"))
        threading.Thread(target=lambda: (time.sleep(0.2), print("thread joined"))).start()
        """,
    )
    os.environ["ONLY_IN_WORKER"] = "worker"
    try:
        run = await _run(
            "python job/run.py --eps 0.5 'two words'",
            tmp_path,
            pool,
            env={"JOB_VALUE": "job", "ONLY_IN_WORKER": "job-sees-this"},
        )
    finally:
        del os.environ["ONLY_IN_WORKER"]
    assert run.result.warm
    assert run.result.exit_code == 0, run.lines
    assert run.lines == [
        "args ['--eps', '0.5', 'two words']",
        "err 1",
        "env job job-sees-this",
        "err 2",
        f"cwd {tmp_path}",
        f"path0 {tmp_path / 'job'}",
        "name __main__",
        "thread joined",
        "atexit ran",
    ]
    assert (tmp_path / "out.log").read_text().splitlines() == run.lines


async def test_the_job_environment_replaces_the_pool_environment(
    pool: WarmPool, tmp_path: Path
) -> None:
    _script(tmp_path, "run.py", "import os\nprint(sorted(os.environ.items()))\n")
    run = await _run("python run.py", tmp_path, pool, env={"JOB_ONLY": "1"})
    assert run.lines == [str(sorted({**os.environ, "JOB_ONLY": "1"}.items()))]


@pytest.mark.parametrize(
    ("code", "exit_code", "last_line"),
    [
        ("print('fine')", 0, "fine"),
        ("import sys\nprint('bye')\nsys.exit(3)", 3, "bye"),
        ("import sys\nsys.exit('a message')", 1, "a message"),
        ("import sys\nsys.exit()", 0, None),
        ("def f():\n    raise ValueError('boom')\nf()", 1, "ValueError: boom"),
        ("raise KeyboardInterrupt", 1, "KeyboardInterrupt"),
    ],
)
async def test_exit_codes_are_those_of_python(
    pool: WarmPool, tmp_path: Path, code: str, exit_code: int, last_line: str | None
) -> None:
    _script(tmp_path, "run.py", code + "\n")
    run = await _run("python run.py", tmp_path, pool)
    assert run.result.warm
    assert run.result.exit_code == exit_code, run.lines
    assert (run.lines[-1] if run.lines else None) == last_line
    if "raise ValueError" in code:
        # As python prints it: from the script's frames, without the pool's.
        assert run.lines[:2] == [
            "Traceback (most recent call last):",
            f'  File "{tmp_path / "run.py"}", line 3, in <module>',
        ]


async def test_a_timeout_kills_the_group_and_the_pool_serves_the_next_job(
    pool: WarmPool, tmp_path: Path
) -> None:
    marker = tmp_path / "grandchild.pid"
    _script(
        tmp_path,
        "run.py",
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        open({str(marker)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    run = await _run("python run.py", tmp_path, pool, timeout_s=1)
    assert run.result.warm
    assert run.result.timed_out
    assert run.result.exit_code < 0  # killed by a signal
    assert run.lines == ["started"]
    assert time.monotonic() - started < 10
    await asyncio.sleep(0.2)
    assert process_gone(int(marker.read_text()))

    _script(tmp_path, "next.py", "print('next job')\n")
    run = await _run("python next.py", tmp_path, pool)
    assert run.result.warm
    assert (run.result.exit_code, run.lines) == (0, ["next job"])


async def test_jobs_do_not_share_module_state(pool: WarmPool, tmp_path: Path) -> None:
    _script(tmp_path, "state.py", "value = 'initial'\n")
    _script(
        tmp_path,
        "a.py",
        """
        import json, state, sys
        state.value = "set by job A"
        json.theodolite_marker = "A"
        print(state.value, json.theodolite_marker)
        """,
    )
    _script(
        tmp_path,
        "b.py",
        """
        import json, sys
        print("state" in sys.modules, getattr(json, "theodolite_marker", None))
        import state
        print(state.value)
        """,
    )
    first = await _run("python a.py", tmp_path, pool)
    second = await _run("python b.py", tmp_path, pool)
    assert first.lines == ["set by job A A"]
    assert second.lines == ["False None", "initial"]
    assert first.result.warm and second.result.warm


async def test_a_module_runs_as_python_m_would(pool: WarmPool, tmp_path: Path) -> None:
    _script(tmp_path, "tool/__init__.py", "")
    _script(
        tmp_path,
        "tool/greet.py",
        """
        import os, sys
        print(__name__, sys.argv[1:], sys.path[0] == os.getcwd(), sys.argv[0].endswith("greet.py"))
        sys.exit(5)
        """,
    )
    run = await _run("python -m tool.greet hello --n 2", tmp_path, pool)
    assert run.result.warm
    assert run.result.exit_code == 5
    assert run.lines == ["__main__ ['hello', '--n', '2'] True True"]


@pytest.mark.parametrize("warm", [True, False])
async def test_progress_lines_become_progress_reports_not_log_lines(
    pool: WarmPool, tmp_path: Path, warm: bool
) -> None:
    prefix = PROGRESS_LINE_PREFIX
    _script(
        tmp_path,
        "run.py",
        f"""
        import time
        print("before")
        print({prefix!r} + '{{"fraction": 0.25, "message": "loading", "step": "data"}}', flush=True)
        time.sleep(0.2)
        print("between")
        print({prefix!r} + '{{"fraction": 0.5}}', flush=True)
        time.sleep(0.2)
        print({prefix!r} + 'not json')
        print({prefix!r} + '{{"fraction": 7}}')
        print("after")
        """,
    )
    # A shell operator sends the same script down the bash path.
    command = "python run.py" if warm else "python run.py && true"
    run = await _run(command, tmp_path, pool)
    assert run.result.warm is warm
    assert run.result.exit_code == 0
    assert run.progress == [
        JobProgress(fraction=0.25, message="loading", step="data"),
        JobProgress(fraction=0.5),
    ]
    assert run.lines == [
        "before",
        "between",
        f"{prefix}not json",
        f'{prefix}{{"fraction": 7}}',
        "after",
    ]
    assert (tmp_path / "out.log").read_text().splitlines() == run.lines


async def test_shell_commands_take_the_bash_path(pool: WarmPool, tmp_path: Path) -> None:
    _script(tmp_path, "run.py", "print('from python')\n")
    run = await _run("python run.py && echo from bash", tmp_path, pool)
    assert not run.result.warm
    assert run.lines == ["from python", "from bash"]


async def test_a_missing_script_fails_as_python_does(pool: WarmPool, tmp_path: Path) -> None:
    run = await _run("python missing.py", tmp_path, pool)
    assert not run.result.warm  # the cold path says what python says
    assert run.result.exit_code == 2
    assert "can't open file" in run.lines[-1]


async def test_a_pool_that_is_not_started_leaves_jobs_cold(tmp_path: Path) -> None:
    _script(tmp_path, "run.py", "print('cold')\n")
    run = await _run("python run.py", tmp_path, WarmPool(["json"]))
    assert not run.result.warm
    assert run.lines == ["cold"]
