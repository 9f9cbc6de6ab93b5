"""What runs inside a warm pool child: one job, as ``python SCRIPT`` or ``python -m MODULE`` would.

The forkserver imports this module (and the heavy libraries) once; every job is a fresh fork of
it, so nothing leaks between jobs. Only the standard library here: it must stay cheap to import
and must never compute anything in the forkserver.
"""

from __future__ import annotations

import atexit
import importlib
import io
import os
import runpy
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from theodolite.sandbox.cgroups import JobCgroup
    from theodolite.sandbox.policy import SandboxPolicy
    from theodolite_worker.sandbox_entry import LoopbackForward

# The streams replaced in the child, kept so that nothing closes fds 1 and 2 behind our back.
_replaced_streams: list[object] = []


class WarmCommand(NamedTuple):
    """``python SCRIPT ARGS…`` (kind ``script``) or ``python -m MODULE ARGS…`` (``module``)."""

    kind: Literal["script", "module"]
    target: str
    args: tuple[str, ...]


class WarmSandbox(NamedTuple):
    """What a warm job enters after the fork, before any of its code runs."""

    policy: SandboxPolicy
    cgroup: JobCgroup | None
    forwards: tuple[LoopbackForward, ...]


def probe(result: Connection, modules: list[str]) -> None:
    """Report which of ``modules`` the forkserver has imported (it skips failures silently)."""
    result.send([name for name in modules if name in sys.modules])
    result.close()


def _text_stream(fd: int, encoding: str, errors: str) -> io.TextIOWrapper:
    # Like ``python -u``: every write reaches the pipe at once, so stdout and stderr interleave
    # in the order they were written.
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        raw, encoding=encoding, errors=errors, line_buffering=True, write_through=True
    )


def _redirect_output(output: Connection) -> None:
    """fds 1 and 2 (and ``sys.stdout``/``sys.stderr``) to the parent's pipe; stdin from null."""
    fd = output.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    output.close()
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
    _replaced_streams.extend((sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))
    stdout, stderr = (
        _text_stream(1, encoding, "strict"),
        _text_stream(2, encoding, "backslashreplace"),
    )
    # The originals too, as the job's own interpreter would have them; typeshed calls them Final,
    # which holds for a process that keeps its streams, not for this fork.
    sys.stdout = sys.__stdout__ = stdout  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = stderr  # type: ignore[misc]


def _print_job_traceback(exc: BaseException) -> None:
    """The traceback as ``python`` prints it: without this module's and runpy's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") in {__name__, "runpy"}:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _exit_status(exc: SystemExit) -> int:
    """What the interpreter would exit with for this ``SystemExit``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _reseed() -> None:
    # numpy's global RandomState was seeded once in the forkserver: without this every job would
    # draw the same "random" numbers. (``random`` reseeds itself after a fork.)
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _execute(command: WarmCommand) -> int:
    sys.argv = [command.target, *command.args]
    try:
        if command.kind == "script":
            path = os.path.abspath(command.target)
            sys.path.insert(0, os.path.dirname(path))  # as ``python script.py`` does
            runpy.run_path(path, run_name="__main__")
        else:
            sys.path.insert(0, os.getcwd())  # as ``python -m module`` does
            runpy.run_module(command.target, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_status(exc)
    except BaseException as exc:
        _print_job_traceback(exc)
        return 1
    return 0


def _finish(code: int) -> None:
    """Interpreter shutdown, as far as a job can tell: threads, atexit handlers, flushes."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads
    except Exception:
        traceback.print_exc()
    atexit._run_exitfuncs()  # mlflow ends runs and flushes through atexit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _enter(sandbox: WarmSandbox) -> None:
    """Become the sandbox (this process stays outside as its relay: only pid 1 returns)."""
    from theodolite.sandbox.enter import enter_sandbox
    from theodolite_worker.sandbox_entry import fork_forwards

    enter_sandbox(sandbox.policy, cgroup=sandbox.cgroup)
    fork_forwards(sandbox.forwards)


def _rehome() -> None:
    """Libraries the forkserver imported under the worker's HOME kept paths below it, which the
    sandbox does not show: point them at the job's own HOME. ART keeps its data folder
    (``~/.art/data``) from its import on."""
    art_config = sys.modules.get("art.config")
    home = os.environ.get("HOME")
    if art_config is not None and home:
        art_config.set_data_path(os.path.join(home, ".art", "data"))


def run_job(
    command: WarmCommand,
    cwd: str,
    env: dict[str, str],
    output: Connection,
    sandbox: WarmSandbox | None = None,
) -> None:
    """The warm child's entry point; never returns."""
    # It dies with the forkserver (which dies with the worker) from the fork on: set by
    # ``warm_server_init``'s fork hook, before this is even unpickled.
    os.setpgid(0, 0)  # its own process group: killing the group spares the forkserver
    code = 1
    try:
        _redirect_output(output)
        # Children start with the forkserver's environment: the job's is set here, whole.
        os.environ.clear()
        os.environ.update(env)
        if sandbox is not None:
            _enter(sandbox)  # its environment is the policy's, with the forwarders' URLs
        os.chdir(cwd)
        _reseed()
        _rehome()
        importlib.invalidate_caches()  # packages installed since the forkserver started
        code = _execute(command)
    except BaseException:
        traceback.print_exc()
    _finish(code)
