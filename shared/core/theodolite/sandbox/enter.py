"""Enter a sandbox from a freshly forked child (the warm pool): no exec, so no import is lost.

`enter_sandbox` unshares mount, PID, network, IPC, UTS and cgroup namespaces (ctypes on libc:
Python 3.11 has no os.unshare), then forks once more, since only a child of ``unshare`` lands in
the new PID namespace. The caller's process stays outside as a relay: it forwards SIGTERM,
SIGINT and SIGHUP, waits, and exits with the job's status; it never returns. The child returns
as pid 1 of the namespace, in a root on tmpfs holding only the policy's paths, as the policy's
uid with no capabilities and no_new_privs, rlimits set, in the work folder, with the policy's
environment. When pid 1 exits the kernel kills every other process of the namespace (a
``setsid`` daemon too), and both relay and pid 1 die by SIGKILL when their parent does.

Stdlib only and nothing done at import: the forkserver imports this module.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import select
import signal
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from theodolite.sandbox.rlimits import apply_rlimits, rlimits_for

if TYPE_CHECKING:
    from theodolite.sandbox.cgroups import JobCgroup
    from theodolite.sandbox.policy import SandboxPolicy

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Where the new root is assembled (inside the private mount namespace, over the host's /tmp).
STAGE = "/tmp"
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# pid 1 of a PID namespace ignores signals it has no handler for: these end it as they would
# any process (exit status 128 + signal number), unless the job installs handlers of its own.
# SIGXCPU too (the soft CPU limit), so its exit status names the breach (limits.breach_of_exit).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGXCPU)


class SandboxEntryFailed(RuntimeError):
    """The sandbox could not be set up; the job must not run."""


_libc: ctypes.CDLL | None = None


def _call(name: str, *arguments: object) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result: int = getattr(_libc, name)(*arguments)
    if result == -1:
        error = ctypes.get_errno()
        raise SandboxEntryFailed(f"{name}{arguments!r}: {os.strerror(error)}")
    return result


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str = "") -> None:
    _call(
        "mount", _bytes(source), target.encode(), _bytes(kind), ctypes.c_ulong(flags), _bytes(data)
    )


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text else None


def _die_with_parent(parent_alive: int | None = None) -> None:
    """SIGKILL when the parent dies. A change of uid clears this, so pid 1 sets it again after
    becoming the sandbox's uid; it cannot see its parent's pid, so ``parent_alive`` (the read
    end of a pipe the parent holds open) tells whether the parent died before the prctl."""
    parent = os.getppid()
    _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_alive is not None:
        if select.select([parent_alive], [], [], 0)[0]:  # readable: end of file, parent gone
            os._exit(137)
    elif os.getppid() != parent:
        os._exit(137)


def _bind(source: Path, target: str, *, writable: bool) -> None:
    """A bind mount of one host path (at /oldroot) into the new root, read-only unless
    writable, never with setuid or device files; symlinks stay symlinks."""
    host = "/oldroot" + str(source)
    if os.path.islink(host) and not writable:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(host), target)
        return
    if os.path.isdir(host):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(host, target, None, MS_BIND | (MS_REC if writable else 0))
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    _mount(None, target, None, flags)


def _make_dev(root: str, devices: tuple[Path, ...]) -> None:
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/oldroot/dev/{name}"):
            open(f"{dev}/{name}", "a").close()
            _mount(f"/oldroot/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for device in devices:
        target = root + str(device)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
        _mount("/oldroot" + str(device), target, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{dev}/{name}")
    os.symlink("/proc/self/fd/1", f"{dev}/stdout")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")
    os.mkdir(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def _build_root(policy: SandboxPolicy) -> None:
    """Assemble the new root at /newroot, with the host's root at /oldroot, then switch to it."""
    shown = (*policy.system_paths(), *policy.read_only_paths())  # looked up on the host's root
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.mkdir(f"{STAGE}/newroot")
    os.mkdir(f"{STAGE}/oldroot")
    _mount("tmpfs", f"{STAGE}/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.chdir(STAGE)
    _pivot_root(".", "oldroot")  # the stage is / now, the host's root /oldroot
    os.chdir("/")
    root = "/newroot"
    os.mkdir(f"{root}/proc")
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _make_dev(root, policy.devices)
    os.mkdir(f"{root}/tmp")
    _mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for path in shown:
        _bind(path, root + str(path), writable=False)
    _bind(policy.work_dir, root + str(policy.work_dir), writable=True)
    os.chdir(root)
    _pivot_root(".", ".")  # the new root over the stage, which is then detached with the host's
    _call("umount2", b".", MNT_DETACH)
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)


def _pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SandboxEntryFailed(f"pivot_root: unknown syscall number on {platform.machine()}")
    _call("syscall", ctypes.c_long(number), new_root.encode(), put_old.encode())


def loopback_up() -> None:
    """Bring up ``lo`` of a new network namespace (down at birth), so 127.0.0.1 works inside."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(sock, SIOCSIFFLAGS, request)


def _become(policy: SandboxPolicy, rlimits: dict[int, int]) -> None:
    apply_rlimits(rlimits)
    os.setgroups([])
    os.setresgid(policy.gid, policy.gid, policy.gid)
    os.setresuid(policy.uid, policy.uid, policy.uid)  # from root to a uid: every capability gone
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.chdir(policy.work_dir)
    os.environ.clear()
    os.environ.update(policy.env)


def _relay(child: int) -> None:
    """The caller's process after the fork: pass signals on, wait, exit as the job did."""
    for number in RELAYED_SIGNALS:
        signal.signal(number, lambda received, _frame: os.kill(child, received))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        ended_by = os.WTERMSIG(status)
        if ended_by not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler
            signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _end_on_signal(number: int, _frame: object) -> None:
    os._exit(128 + number)


@contextmanager
def pid_namespace_for_next_fork() -> Iterator[None]:
    """In a forkserver (root): the child forked inside this block is pid 1 of a PID namespace
    of its own, so `enter_sandbox` needs no relay and no second fork of a large process (the
    bigger part of its cost). The server's own namespace is restored on leaving."""
    global _server_pid_namespace
    server = os.getpid()
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    _server_pid_namespace = own  # the child closes it in enter_sandbox
    try:
        _call("unshare", CLONE_NEWPID)
        yield
    finally:
        if os.getpid() == server:  # the child leaves the block too: it must not go back
            _call("setns", own, CLONE_NEWPID)
            _server_pid_namespace = None
            os.close(own)


_server_pid_namespace: int | None = None


def enter_sandbox(policy: SandboxPolicy, *, cgroup: JobCgroup | None = None) -> None:
    """Make this freshly forked, single-threaded, root child the policy's sandbox; returns in
    pid 1 of a new PID namespace. A child forked inside `pid_namespace_for_next_fork` is that
    pid 1 already; any other forks once more and stays outside as the relay (never returns).
    With a cgroup, joins it first so every process of the sandbox is counted.
    Raises SandboxEntryFailed if the namespaces cannot be made; a step that fails after that
    ends the sandbox with status 125 and ``sandbox: <why>`` on stderr, before any of the job
    runs."""
    global _server_pid_namespace
    if _server_pid_namespace is not None:
        os.close(_server_pid_namespace)  # the server's PID namespace: never inside
        _server_pid_namespace = None
    if cgroup is not None:
        cgroup.add(os.getpid())
    _die_with_parent()
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    flags |= 0 if policy.network else CLONE_NEWNET
    relay_alive: int | None = None
    if os.getpid() == 1:
        _call("unshare", flags)
    else:
        _call("unshare", flags | CLONE_NEWPID)
        relay_alive, relay_holds = os.pipe()  # the relay keeps the write end open until it exits
        child = os.fork()
        if child != 0:
            os.close(relay_alive)
            _relay(child)
        os.close(relay_holds)
    try:
        _die_with_parent(relay_alive)
        for number in ENDING_SIGNALS:
            signal.signal(number, _end_on_signal)
        name = policy.hostname.encode()
        _call("sethostname", name, len(name))
        if not policy.network:
            loopback_up()
        previous_umask = os.umask(0o022)
        _build_root(policy)
        os.umask(previous_umask)
        values = rlimits_for(
            policy.limits,
            memory_in_cgroup=cgroup is not None and cgroup.limits_memory,
            processes_in_cgroup=cgroup is not None and cgroup.limits_processes,
        )
        _become(policy, values)
        _die_with_parent(relay_alive)
        if relay_alive is not None:
            os.close(relay_alive)
    except BaseException as error:  # never run the job half-contained
        os.write(2, f"sandbox: {error}\n".encode())
        os._exit(125)
