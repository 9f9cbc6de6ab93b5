"""What entering a sandbox adds to a job's start. Prints JSON. Not a test. Run as root.

    .venv/bin/python bench/sandbox_entry.py --runs 50 --preload numpy

``fork``: a forked child (as the warm pool's forkserver makes one) writes a byte to a pipe;
measured from just before ``os.fork`` to the parent reading it. ``fork_enter``: the same child
calls ``enter_sandbox`` first (unshare, the relay's fork, the new root, uid, rlimits), so the byte
comes from pid 1 of the sandbox; ``fork_enter_cgroup`` also makes the job's cgroup (create with
limits, join) and removes it after. ``fork_as_pid_1_enter`` forks inside
``pid_namespace_for_next_fork`` (as a forkserver would), so the child is pid 1 already and needs
no relay. ``added_ms`` is what the sandbox adds to the plain fork (p50 against p50).
``bwrap_true`` is ``bwrap ... -- /bin/true`` from spawn to exit against a plain ``/bin/true``,
and ``bwrap_python`` the same for ``python -c pass``. ``child_cpu_ms`` is the child's own CPU
time up to its byte, which a loaded machine inflates far less than wall time. ``--preload``
imports modules first so the forked process has a warm pool's size.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from stats import percentiles

from theodolite.sandbox.bwrap import bwrap_command
from theodolite.sandbox.cgroups import JobCgroup
from theodolite.sandbox.enter import enter_sandbox, pid_namespace_for_next_fork
from theodolite.sandbox.environment import sandbox_environment
from theodolite.sandbox.limits import SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy, hand_over, interpreter_paths

UID = 240_000
LIMITS = SandboxLimits(memory_bytes=1 << 30, processes=64, cpu_seconds=60, open_files=256)


CPU_TIMES: dict[str, list[float]] = {}


def forked(policy: SandboxPolicy | None, with_cgroup: bool, as_pid_1: bool = False) -> float:
    """ms from before the fork to the first byte from the (sandboxed) child; the child's own
    CPU time to that point is kept in CPU_TIMES (less sensitive to a loaded machine)."""
    started = time.perf_counter()
    cgroup = JobCgroup.create(f"bench-{uuid.uuid4().hex[:10]}", LIMITS) if with_cgroup else None
    reader, writer = os.pipe()
    with pid_namespace_for_next_fork() if as_pid_1 else contextlib.nullcontext():
        child = os.fork()
    if child == 0:
        os.close(reader)
        if policy is not None:
            enter_sandbox(policy, cgroup=cgroup)
        os.write(writer, f"{time.process_time() * 1000:.3f}".encode())
        os._exit(0)
    os.close(writer)
    cpu_ms = float(os.read(reader, 64))
    elapsed = (time.perf_counter() - started) * 1000
    kind = "fork" if policy is None else "as_pid_1" if as_pid_1 else "relay"
    CPU_TIMES.setdefault(kind + ("_cgroup" if with_cgroup else ""), []).append(cpu_ms)
    os.close(reader)
    os.waitpid(child, 0)
    if cgroup is not None:
        cgroup.remove()
    return elapsed


def spawned(argv: list[str]) -> float:
    """ms from spawn to exit of a command."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, env={})
    return (time.perf_counter() - started) * 1000


def measure(runs: int, action: Callable[[], float]) -> dict[str, float]:
    action()  # one unmeasured run
    return percentiles([action() for _ in range(runs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--preload", default="", help="modules to import first, comma-separated")
    arguments = parser.parse_args()
    for name in filter(None, arguments.preload.split(",")):
        importlib.import_module(name)
    work_dir = Path(tempfile.mkdtemp(prefix="theodolite-bench-sandbox-"))
    os.chmod(work_dir, 0o755)
    hand_over(work_dir, UID, UID)
    policy = SandboxPolicy(
        uid=UID,
        gid=UID,
        work_dir=work_dir,
        read_only=interpreter_paths(),
        env=sandbox_environment({"THEODOLITE_JOB_ID": "bench"}),
        limits=LIMITS,
    )
    try:
        results: dict[str, object] = {
            "runs": arguments.runs,
            "preload": arguments.preload,
            "fork": measure(arguments.runs, lambda: forked(None, False)),
            "fork_enter": measure(arguments.runs, lambda: forked(policy, False)),
            "fork_enter_cgroup": measure(arguments.runs, lambda: forked(policy, True)),
            "fork_as_pid_1_enter": measure(arguments.runs, lambda: forked(policy, False, True)),
            "true": measure(arguments.runs, lambda: spawned(["/bin/true"])),
            "bwrap_true": measure(
                arguments.runs, lambda: spawned(bwrap_command(policy, ["/bin/true"]))
            ),
            "python": measure(arguments.runs, lambda: spawned([sys.executable, "-c", "pass"])),
            "bwrap_python": measure(
                arguments.runs,
                lambda: spawned(bwrap_command(policy, [sys.executable, "-c", "pass"])),
            ),
        }
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    def p50(name: str) -> float:
        value = results[name]
        assert isinstance(value, dict)
        return float(value["p50"])

    results["added_ms"] = {
        "enter_sandbox": round(p50("fork_enter") - p50("fork"), 1),
        "enter_sandbox_with_cgroup": round(p50("fork_enter_cgroup") - p50("fork"), 1),
        "enter_sandbox_as_pid_1": round(p50("fork_as_pid_1_enter") - p50("fork"), 1),
        "bwrap_true": round(p50("bwrap_true") - p50("true"), 1),
        "bwrap_python": round(p50("bwrap_python") - p50("python"), 1),
    }
    # The first process's CPU time from its fork to its first byte (with the relay, that of
    # pid 1 only: the relay's unshare and fork are not in it).
    results["child_cpu_ms"] = {kind: percentiles(times) for kind, times in CPU_TIMES.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
