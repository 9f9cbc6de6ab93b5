"""Hostile Python through every way into a sandbox, with the same assertions: what it sees,
what it reaches, and that nothing it starts outlives it or its worker. Real namespaces, real
cgroups, the real PostgreSQL and RabbitMQ ports of this host; run as root, as the worker does."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time

import pytest

from tests.fixtures.sandboxes import (
    BACKENDS,
    REPOSITORY,
    SECRET,
    Sandbox,
    all_gone,
    as_limits,
    as_root,
    sandbox,
)

__all__ = ["as_root", "sandbox"]

pytestmark = pytest.mark.usefixtures("as_root")


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
    assert all_gone(sandbox.last_policy.uid)


def test_every_job_process_dies_with_its_worker_however_the_worker_dies(sandbox: Sandbox) -> None:
    policy, cgroup = sandbox.policy(as_limits(processes=64, memory_bytes="1 GiB"))
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
        assert all_gone(policy.uid)
        assert cgroup.pids() == set()
    finally:
        cgroup.remove()


def test_kill_all_empties_a_cgroup_a_fork_bomb_keeps_filling(sandbox: Sandbox) -> None:
    policy, cgroup = sandbox.policy(as_limits(processes=200, memory_bytes="1 GiB"))
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
