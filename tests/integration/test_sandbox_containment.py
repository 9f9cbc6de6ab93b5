"""Hostile Python run through both ways into a sandbox, with the same assertions: bubblewrap
(`bwrap_command`, cold commands and plugin validation) and a forked child that calls
`enter_sandbox` (the warm pool). Real namespaces, real cgroups, real PostgreSQL and RabbitMQ
ports on this host; run as root, as the worker does."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from theodolite.sandbox.bwrap import bwrap_command
from theodolite.sandbox.cgroups import JobCgroup
from theodolite.sandbox.enter import enter_sandbox, pid_namespace_for_next_fork
from theodolite.sandbox.environment import sandbox_environment
from theodolite.sandbox.limits import Breach, SandboxLimits, breach_of_exit
from theodolite.sandbox.policy import SandboxPolicy, hand_over, interpreter_paths

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="the worker runs sandboxes as root")

FIRST_UID = 230_000 + (os.getpid() % 1000) * 20
SECRET = "s3-secret-never-inside"
REPOSITORY = Path(__file__).resolve().parents[2]


def _limits(**values: object) -> SandboxLimits:
    """Limits as settings write them (``"1 GiB"``)."""
    return SandboxLimits.model_validate(values)


@dataclass
class Outcome:
    status: int  # exit code; negative: the signal that ended it (as subprocess reports)
    output: str
    breach: Breach | None

    def report(self) -> dict[str, Any]:
        """The JSON line a snippet printed last."""
        lines = [line for line in self.output.splitlines() if line.startswith("{")]
        assert lines, self.output
        return json.loads(lines[-1])


def _run_bwrap(
    policy: SandboxPolicy, snippet: str, cgroup: JobCgroup | None, timeout_s: float
) -> int:
    command = bwrap_command(policy, [sys.executable, "-c", snippet], cgroup=cgroup)
    with open(policy.work_dir / ".output", "w") as output:
        done = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, env={}, timeout=timeout_s
        )
    # bwrap reports a command killed by a signal as 128 + the signal.
    return -(done.returncode - 128) if done.returncode > 128 else done.returncode


def _in_forked_child(
    policy: SandboxPolicy, snippet: str, cgroup: JobCgroup | None, output: int
) -> None:
    code = 1
    try:
        os.dup2(output, 1)
        os.dup2(output, 2)
        sys.stdout = open(1, "w", closefd=False)  # pytest replaced the objects, not the fds
        sys.stderr = open(2, "w", closefd=False)
        enter_sandbox(policy, cgroup=cgroup)
        try:
            exec(compile(snippet, "<job>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _run_forked(
    policy: SandboxPolicy,
    snippet: str,
    cgroup: JobCgroup | None,
    timeout_s: float,
    *,
    as_pid_1: bool = False,
) -> int:
    with open(policy.work_dir / ".output", "w") as output:
        with pid_namespace_for_next_fork() if as_pid_1 else contextlib.nullcontext():
            child = os.fork()
        if child == 0:
            _in_forked_child(policy, snippet, cgroup, output.fileno())
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            if cgroup is not None:
                cgroup.kill_all()
            os.kill(child, 9)
            os.waitpid(child, 0)
            raise TimeoutError(f"the forked sandbox ran past {timeout_s} s")
        time.sleep(0.01)


def _all_gone(uid: int, within_s: float = 2.0) -> bool:
    """No live process of the uid, within a moment: the kernel's SIGKILLs take that to land."""
    deadline = time.monotonic() + within_s
    while _processes_of(uid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


BACKENDS: dict[str, Callable[[SandboxPolicy, str, JobCgroup | None, float], int]] = {
    "bwrap": _run_bwrap,
    "enter_sandbox": _run_forked,
    # Forked straight into a PID namespace of its own (a forkserver's way): no relay.
    "enter_sandbox_as_pid_1": functools.partial(_run_forked, as_pid_1=True),
}


@dataclass
class Sandbox:
    """Runs snippets in a fresh sandbox of one backend, each under its own uid and cgroup."""

    backend: str
    root: Path
    read_only_cache: Path
    uids: Iterator[int]

    def policy(self, limits: SandboxLimits) -> tuple[SandboxPolicy, JobCgroup]:
        uid = next(self.uids)
        work_dir = self.root / f"job-{uid}"
        work_dir.mkdir()
        hand_over(work_dir, uid, uid)
        env = sandbox_environment({"THEODOLITE_JOB_ID": f"job-{uid}", "HOME": str(work_dir)})
        # pytest puts the repository itself on sys.path; the worker's interpreter has no such entry.
        interpreter = (path for path in interpreter_paths() if path != REPOSITORY)
        read_only = (*interpreter, self.read_only_cache)
        policy = SandboxPolicy(
            uid=uid, gid=uid, work_dir=work_dir, read_only=read_only, env=env, limits=limits
        )
        return policy, JobCgroup.create(f"test-{uuid.uuid4().hex[:12]}", limits)

    def run(
        self,
        snippet: str,
        limits: SandboxLimits | None = None,
        timeout_s: float = 60,
        *,
        in_cgroup: bool = True,
    ) -> Outcome:
        policy, cgroup = self.policy(limits or _limits(processes=64, memory_bytes="1 GiB"))
        self.last_policy = policy
        try:
            joined = cgroup if in_cgroup else None
            status = BACKENDS[self.backend](policy, textwrap.dedent(snippet), joined, timeout_s)
            breach = cgroup.breached() or breach_of_exit(status)
        finally:
            cgroup.remove()
        return Outcome(status, (policy.work_dir / ".output").read_text(), breach)


@pytest.fixture(params=sorted(BACKENDS))
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    # The worker's own environment holds credentials: none may reach the sandbox.
    monkeypatch.setenv("THEODOLITE_S3_SECRET_KEY", SECRET)
    root = Path(tempfile.mkdtemp(prefix="theodolite-sandbox-test-"))
    os.chmod(root, 0o755)
    cache = root / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)  # only the read-only mount can refuse a write here
    (root / "secret.txt").write_text(SECRET)
    index = list(sorted(BACKENDS)).index(request.param)
    yield Sandbox(
        request.param, root, cache, iter(range(FIRST_UID + index * 10, FIRST_UID + index * 10 + 10))
    )
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _processes_of(uid: int) -> list[int]:
    """Live processes of a uid (a zombie waiting for the host's init to reap it runs nothing)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields["Uid"].split()[0] == str(uid) and not fields["State"].startswith("Z"):
                found.append(int(name))
    return found


PROBE = """
import json, os, socket, sys
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as error:
        return errno_name(error)
def errno_name(error):
    import errno
    return errno.errorcode.get(error.errno, str(error))
def connect(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close()
def write(path):
    return lambda: open(path, "w").write("poison")
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
listener = socket.create_server(("127.0.0.1", 0))
own_port = listener.getsockname()[1]
print(json.dumps({
    "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
    "groups": os.getgroups(),
    "pid": os.getpid(),
    "capabilities": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "environment": dict(os.environ),
    "processes": {name: open(f"/proc/{name}/cmdline", "rb").read().decode(errors="replace")
                  for name in os.listdir("/proc") if name.isdigit()},
    "visible": {path: os.path.exists(path) for path in PATHS},
    "writes": {path: attempt(write(path)) for path in WRITES},
    "connects": {str(port): attempt(connect(port)) for port in PORTS},
    "own_loopback": attempt(connect(own_port)),
    "work_dir_write": attempt(write("written-by-job")),
    "devices": {path: attempt(write(path)) for path in ("/dev/null", "/dev/shm/x", "/tmp/x")},
    "hostname": socket.gethostname(),
}))
"""


def test_a_hostile_job_sees_and_reaches_only_its_own(sandbox: Sandbox) -> None:
    outside = socket.create_server(("127.0.0.1", 0))  # reachable from here, not from inside
    port = outside.getsockname()[1]
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    hidden = [
        str(sandbox.root / "secret.txt"),
        "/etc/shadow",
        "/root/.bash_history",
        str(REPOSITORY / "deploy"),
        "/var/run",
        "/sys/fs/cgroup",
    ]
    venv_file = os.path.join(sys.prefix, "poison.pth")
    writes = [venv_file, str(sandbox.read_only_cache / "plugin.py"), "/usr/poison", "/poison"]
    snippet = PROBE.replace("PATHS", repr(hidden)).replace("WRITES", repr(writes))
    snippet = snippet.replace("PORTS", repr([5432, 5672, port]))
    outcome = sandbox.run(snippet)
    outside.close()
    assert outcome.status == 0, outcome.output
    report = outcome.report()
    policy = sandbox.last_policy
    assert report["uid"] == [policy.uid] * 4
    assert report["groups"] in ([], [policy.gid])
    assert report["capabilities"] == "0000000000000000"
    assert report["no_new_privs"] == "1"
    # No variable outside the policy's allow-listed environment (the interpreter may add its
    # locale coercion and bwrap the working directory), and no secret value.
    extra = set(report["environment"]) - set(policy.env) - {"LC_CTYPE", "PWD"}
    assert extra == set()
    assert SECRET not in json.dumps(report["environment"])
    processes = report["processes"]
    # Only itself, and bwrap's init (pid 1) where bwrap started it.
    assert isinstance(processes, dict) and str(report["pid"]) in processes
    others = [command for pid, command in processes.items() if pid != str(report["pid"])]
    assert others in ([], [processes.get("1")]) and all("bwrap" in command for command in others)
    assert report["visible"] == dict.fromkeys(hidden, False)
    assert set(report["writes"].values()) <= {"EROFS", "EACCES"}, report["writes"]
    assert report["writes"][venv_file] == "EROFS"
    assert report["writes"][str(sandbox.read_only_cache / "plugin.py")] == "EROFS"
    assert report["connects"] == {
        "5432": "ECONNREFUSED",
        "5672": "ECONNREFUSED",
        str(port): "ECONNREFUSED",
    }
    assert report["own_loopback"] == "allowed"  # a forwarder on 127.0.0.1 would work inside
    assert report["work_dir_write"] == "allowed"
    assert report["devices"] == dict.fromkeys(["/dev/null", "/dev/shm/x", "/tmp/x"], "allowed")
    assert report["hostname"] == policy.hostname
    assert (policy.work_dir / "written-by-job").stat().st_uid == policy.uid
    assert not os.path.exists(venv_file)


def test_a_setsid_daemon_dies_with_the_job(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.5)
                open("daemon-was-here", "w").write("still running")
                os._exit(0)
            os._exit(0)
        time.sleep(0.2)
        print("{}")
        """
    )
    assert outcome.status == 0, outcome.output
    time.sleep(2.5)
    assert not (sandbox.last_policy.work_dir / "daemon-was-here").exists()
    assert _all_gone(sandbox.last_policy.uid)


def test_a_memory_hog_is_stopped_by_the_cgroup(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        """
        hoard = [b"x" * (16 << 20) for _ in range(64)]
        print('{"survived": true}')
        """,
        _limits(memory_bytes="128 MiB", processes=64),
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
        _limits(memory_bytes="512 MiB", processes=64),
        in_cgroup=False,
    )
    assert outcome.report() == {"memory_error": True}


def test_without_a_pids_cgroup_rlimit_nproc_stops_a_fork_bomb(sandbox: Sandbox) -> None:
    outcome = sandbox.run(FORK_BOMB, _limits(processes=20), in_cgroup=False)
    report = outcome.report()
    assert report["errno"] == errno.EAGAIN
    assert isinstance(report["started"], int) and report["started"] < 20
    assert _all_gone(sandbox.last_policy.uid)


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
        _limits(processes=20, memory_bytes="1 GiB"),
    )
    assert outcome.status == 0, outcome.output
    report = outcome.report()
    assert report["errno"] == errno.EAGAIN
    assert isinstance(report["started"], int) and report["started"] < 20
    assert outcome.breach is Breach.PROCESSES
    assert _all_gone(sandbox.last_policy.uid)


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
        _limits(file_size_bytes="2 MiB", processes=64, memory_bytes="1 GiB"),
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
        _limits(cpu_seconds=1, processes=64, memory_bytes="1 GiB"),
    )
    assert time.monotonic() - started < 15
    assert breach_of_exit(outcome.status) is Breach.CPU, outcome.output
    assert "finished" not in outcome.output
    assert outcome.breach is Breach.CPU


def test_every_job_process_dies_with_its_worker_however_the_worker_dies(sandbox: Sandbox) -> None:
    policy, cgroup = sandbox.policy(_limits(processes=64, memory_bytes="1 GiB"))
    ticks = policy.work_dir / "ticks"
    snippet = textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()  # a child of its own session: no process-group kill reaches it
        while True:
            with open("ticks", "a") as ticks:
                ticks.write(".")
            time.sleep(0.05)
        """
    )
    worker = os.fork()
    if worker == 0:  # a stand-in worker in a session of its own, like the warm pool's forkserver
        try:
            os.setsid()
            BACKENDS[sandbox.backend](policy, snippet, cgroup, 60)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 20
        while not ticks.exists() or ticks.stat().st_size < 10:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        os.kill(worker, 9)
        os.waitpid(worker, 0)
        time.sleep(0.5)
        written = ticks.stat().st_size
        time.sleep(1.0)
        assert ticks.stat().st_size == written, "a job process wrote after its worker died"
        assert _all_gone(policy.uid)
        assert cgroup.pids() == set()
    finally:
        cgroup.remove()


def test_kill_all_empties_a_cgroup_a_fork_bomb_keeps_filling(sandbox: Sandbox) -> None:
    policy, cgroup = sandbox.policy(_limits(processes=200, memory_bytes="1 GiB"))
    snippet = textwrap.dedent(
        """
        import os, time
        open("started", "w").close()
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(0.01)
            except OSError:
                time.sleep(0.01)
        """
    )
    worker = os.fork()
    if worker == 0:
        try:
            BACKENDS[sandbox.backend](policy, snippet, cgroup, 60)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 20
        while not (policy.work_dir / "started").exists():
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(cgroup.pids()) > 1
        assert cgroup.kill_all()
        assert cgroup.pids() == set()
        os.waitpid(worker, 0)
    finally:
        cgroup.remove()
