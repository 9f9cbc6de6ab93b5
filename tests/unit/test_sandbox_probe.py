"""What the worker says about a host that cannot contain a job (the probe's findings)."""

from __future__ import annotations

from theodolite.sandbox.probe import Isolation


def test_a_host_without_namespaces_or_cgroups_is_described_as_such() -> None:
    isolation = Isolation(
        bwrap_problem="bwrap: No permissions to create new namespace",
        enter_problem="unshare(...): Operation not permitted",
        cgroup_problem="no writable cgroup hierarchy: memory by RLIMIT_AS, processes by RLIMIT_NPROC",
    )
    assert not isolation.namespaces
    enforced = isolation.enforced
    assert enforced["sandbox_bwrap"] == "no: bwrap: No permissions to create new namespace"
    assert enforced["sandbox_fork"].startswith("no: unshare")
    assert enforced["memory"] == "RLIMIT_AS (address space)"
    assert enforced["processes"] == "RLIMIT_NPROC (own uid)"
    assert enforced["network"] == "no"
    assert "no writable cgroup hierarchy" in isolation.describe()


def test_cgroup_v2_controllers_are_named_in_what_is_enforced() -> None:
    isolation = Isolation("", "", cgroup_version=2, cgroup_controllers=("cpu", "memory", "pids"))
    assert isolation.namespaces
    assert isolation.enforced["memory"] == "cgroup v2 memory"
    assert isolation.enforced["processes"] == "cgroup v2 pids + RLIMIT_NPROC (own uid)"
    assert isolation.enforced["cpu_time"] == "cgroup v2 cpu + RLIMIT_CPU per process"
