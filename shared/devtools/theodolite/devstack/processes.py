"""The stack's processes: started in a session of their own with a pid file and a log each,
stopped with a grace period, and waited for until they answer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from theodolite.devstack.config import StackConfig


class StackError(RuntimeError):
    pass


# Processes this interpreter started, kept so they can be reaped (a zombie still looks alive
# to ``kill(pid, 0)``) and so Popen does not warn that it was dropped while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


def executable(config: StackConfig, name: str) -> str:
    """The program ``name`` beside the stack's Python, or else on the PATH."""
    candidate = Path(config.python).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed (pip install 'theodolite[stack]')")
    return found


def _pidfile(config: StackConfig, name: str) -> Path:
    return config.state_dir / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(config: StackConfig, name: str) -> int | None:
    path = _pidfile(config, name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    return pid if _alive(pid) else None


def start_process(config: StackConfig, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start ``argv`` in its own session (so stopping it stops its children), log to a file."""
    if (pid := running_pid(config, name)) is not None:
        return pid
    logs = config.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pidfile(config, name).parent.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children[process.pid] = process
    _pidfile(config, name).write_text(str(process.pid))
    return process.pid


def stop_process(config: StackConfig, name: str, grace_s: float = 10.0) -> bool:
    pid = running_pid(config, name)
    _pidfile(config, name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        # The leader alone, as a container runtime does: it stops its own children in order.
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    try:  # whatever of its group is left (or the leader itself, past the grace period)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
    return True


def log_tail(config: StackConfig, name: str, lines: int = 30) -> str:
    path = config.state_dir / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(config: StackConfig, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if running_pid(config, name) is None:
            raise StackError(f"{name} exited while starting:\n{log_tail(config, name)}")
        time.sleep(0.2)
    raise StackError(f"{name} not ready after {timeout_s:.0f} s:\n{log_tail(config, name)}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def start_server(
    config: StackConfig,
    name: str,
    argv: list[str],
    env: dict[str, str],
    health_url: str,
    timeout_s: float,
) -> None:
    """Start one server of the stack and wait until ``health_url`` answers 200."""
    start_process(config, name, argv, env)
    wait_until(config, name, http_ok(health_url), timeout_s)
