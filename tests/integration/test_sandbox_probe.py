"""The host probe on this machine (root, namespaces allowed, cgroup v1 memory, pids, cpu)."""

from __future__ import annotations

import pytest

from tests.fixtures.sandboxes import as_root
from theodolite.sandbox.cgroups import detect_layout
from theodolite.sandbox.probe import probe_isolation

__all__ = ["as_root"]

pytestmark = pytest.mark.usefixtures("as_root")


def test_the_probe_finds_both_ways_in_and_the_cgroups_this_host_has() -> None:
    isolation = probe_isolation()
    assert isolation.bwrap_problem == ""
    assert isolation.enter_problem == ""
    assert isolation.namespaces
    layout = detect_layout()
    assert layout is not None, "this host has writable cgroup hierarchies"
    assert isolation.cgroup_version == layout.version
    assert {"memory", "pids"} <= set(isolation.cgroup_controllers)
    enforced = isolation.enforced
    assert enforced["sandbox_bwrap"] == enforced["sandbox_fork"] == "yes"
    assert enforced["memory"] == f"cgroup v{layout.version} memory"
    assert enforced["network"] == "own network namespace (loopback only)"
    line = isolation.describe()
    assert line.startswith("isolation: sandbox_bwrap=yes, sandbox_fork=yes, memory=cgroup")
    assert "\n" not in line
    # The probe leaves no group behind.
    for root in layout.roots.values():
        assert not list((root / "theodolite").glob("probe-*"))
