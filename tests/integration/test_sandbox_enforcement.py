"""Each limit of a sandbox enforced through every way in: memory, processes, file size and CPU
time, by cgroups where the host has them and by rlimits without."""

from __future__ import annotations

import errno
import time

import pytest

from tests.fixtures.sandboxes import (
    Sandbox,
    all_gone,
    as_limits,
    as_root,
    sandbox,
)
from theodolite.sandbox.limits import Breach, breach_of_exit

__all__ = ["as_root", "sandbox"]

pytestmark = pytest.mark.usefixtures("as_root")


def test_a_memory_hog_is_stopped_by_the_cgroup(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        """
        hoard = [b"x" * (16 << 20) for _ in range(64)]
        print('{"survived": true}')
        """,
        as_limits(memory_bytes="128 MiB", processes=64),
    )
    assert outcome.status == -9, outcome.output
    assert "survived" not in outcome.output
    assert outcome.breach is Breach.MEMORY


def test_without_a_memory_cgroup_the_address_space_limit_stops_a_hog(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        """
        import json
        try:
            hoard = [b"x" * (16 << 20) for _ in range(64)]
            print('{"survived": true}')
        except MemoryError:
            print(json.dumps({"memory_error": True}))
        """,
        as_limits(memory_bytes="512 MiB", processes=64),
        in_cgroup=False,
    )
    assert outcome.report() == {"memory_error": True}


def test_without_a_pids_cgroup_rlimit_nproc_stops_a_fork_bomb(sandbox: Sandbox) -> None:
    outcome = sandbox.run(FORK_BOMB, as_limits(processes=20), in_cgroup=False)
    report = outcome.report()
    assert report["errno"] == errno.EAGAIN
    assert isinstance(report["started"], int) and report["started"] < 20
    assert all_gone(sandbox.last_policy.uid)


FORK_BOMB = """
import json, os, time
started = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
except OSError as error:
    print(json.dumps({"started": started, "errno": error.errno}))
"""


def test_a_fork_bomb_is_stopped(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        FORK_BOMB,
        as_limits(processes=20, memory_bytes="1 GiB"),
    )
    assert outcome.status == 0, outcome.output
    report = outcome.report()
    assert report["errno"] == errno.EAGAIN
    assert isinstance(report["started"], int) and report["started"] < 20
    assert outcome.breach is Breach.PROCESSES
    assert all_gone(sandbox.last_policy.uid)


def test_a_file_past_the_size_limit_is_refused(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        """
        import json
        try:
            with open("big", "wb") as big:
                for _ in range(4):
                    big.write(b"x" * (1 << 20))
                    big.flush()
            print(json.dumps({"errno": 0}))
        except OSError as error:
            print(json.dumps({"errno": error.errno}))
        """,
        as_limits(file_size_bytes="2 MiB", processes=64, memory_bytes="1 GiB"),
    )
    assert outcome.report() == {"errno": errno.EFBIG}
    assert (sandbox.last_policy.work_dir / "big").stat().st_size <= 2 << 20


def test_a_loop_past_its_cpu_time_is_killed(sandbox: Sandbox) -> None:
    started = time.monotonic()
    outcome = sandbox.run(
        """
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pass
        print('{"finished": true}')
        """,
        as_limits(cpu_seconds=1, processes=64, memory_bytes="1 GiB"),
    )
    assert time.monotonic() - started < 15
    assert breach_of_exit(outcome.status) is Breach.CPU, outcome.output
    assert "finished" not in outcome.output
    assert outcome.breach is Breach.CPU
