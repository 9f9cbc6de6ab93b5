"""Sandbox limits: human sizes, per-job overrides within a queue's maxima, breach reasons."""

from __future__ import annotations

import resource

import pytest
from pydantic import ValidationError

from theodolite.sandbox.limits import (
    Breach,
    SandboxLimits,
    breach_of_exit,
    breach_reason,
    human_size,
    parse_size,
)
from theodolite.sandbox.rlimits import NPROC_MARGIN, prlimit_arguments, rlimits_for

GIB = 1024**3


def _limits(**values: object) -> SandboxLimits:
    return SandboxLimits.model_validate(values)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("4 GiB", 4 * GIB),
        ("4GiB", 4 * GIB),
        ("512 MiB", 512 * 1024**2),
        ("1.5 GB", 1_500_000_000),
        ("2G", 2 * GIB),
        ("4096", 4096),
        (" 10 kb ", 10_000),
    ],
)
def test_sizes_read_as_people_write_them(text: str, count: int) -> None:
    assert parse_size(text) == count
    assert _limits(memory_bytes=text).memory_bytes == count


@pytest.mark.parametrize("text", ["4 parsecs", "GiB", "-1 GiB", "1e9", ""])
def test_a_size_that_is_not_one_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValidationError, match="not a size|greater than 0"):
        _limits(disk_bytes=text)


def test_limits_refuse_unknown_fields_and_non_positive_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SandboxLimits.model_validate({"memory": 1})
    with pytest.raises(ValidationError, match="greater than 0"):
        _limits(processes=0)


def test_human_size_picks_the_largest_unit() -> None:
    assert human_size(4 * GIB) == "4 GiB"
    assert human_size(1536 * 1024**2) == "1.5 GiB"
    assert human_size(1000) == "1000 B"
    assert human_size(64 * 1024) == "64 KiB"


def test_overrides_replace_the_defaults_they_name() -> None:
    defaults = _limits(memory_bytes="4 GiB", processes=256)
    job = defaults.with_overrides({"memory_bytes": "1 GiB", "cpu_seconds": 60})
    assert job == _limits(memory_bytes=GIB, processes=256, cpu_seconds=60)
    assert defaults.with_overrides(None) is defaults
    with pytest.raises(ValidationError):
        defaults.with_overrides({"memroy_bytes": 1})


def test_clamped_keeps_each_limit_within_the_queue_maximum() -> None:
    maxima = _limits(memory_bytes="8 GiB", cpu_seconds=3600)
    asked = _limits(memory_bytes="16 GiB", cpu_seconds=60, open_files=100)
    assert asked.clamped(maxima) == SandboxLimits(
        memory_bytes=8 * GIB, cpu_seconds=60, open_files=100
    )
    # Asking for no limit where the queue has a maximum gets the maximum.
    assert SandboxLimits().clamped(maxima) == maxima


def test_over_names_each_limit_past_its_maximum_in_words() -> None:
    maxima = _limits(memory_bytes="8 GiB", cpu_seconds=3600, processes=100)
    asked = _limits(memory_bytes="16 GiB", cpu_seconds=7200, processes=50)
    assert asked.over(maxima) == [
        "limits.memory_bytes: 16 GiB is over this queue's maximum 8 GiB",
        "limits.cpu_seconds: 7200 s is over this queue's maximum 3600 s",
    ]
    assert SandboxLimits(memory_bytes=GIB).over(SandboxLimits()) == []


def test_breach_reasons_read_as_a_user_expects() -> None:
    limits = _limits(
        memory_bytes="4 GiB",
        cpu_seconds=60,
        processes=256,
        open_files=1024,
        file_size_bytes="1 GiB",
        disk_bytes="10 GiB",
    )
    assert breach_reason("memory", limits) == "memory limit 4 GiB exceeded"
    assert breach_reason(Breach.CPU, limits) == "CPU time limit 60 s exceeded"
    assert breach_reason(Breach.PROCESSES, limits) == "process limit 256 reached"
    assert breach_reason(Breach.OPEN_FILES, limits) == "open files limit 1024 reached"
    assert breach_reason(Breach.FILE_SIZE, limits) == "file size limit 1 GiB exceeded"
    assert breach_reason(Breach.DISK, limits) == "disk limit 10 GiB exceeded (the job's folder)"
    assert breach_reason("memory", SandboxLimits()) == "memory limit exceeded"
    with pytest.raises(ValueError):
        breach_reason("swap", limits)


def test_rlimits_leave_memory_to_a_cgroup_and_back_it_with_address_space_otherwise() -> None:
    limits = _limits(memory_bytes=GIB, cpu_seconds=5, processes=10, open_files=64)
    in_cgroup = rlimits_for(limits, memory_in_cgroup=True)
    assert resource.RLIMIT_AS not in in_cgroup
    assert in_cgroup[resource.RLIMIT_CPU] == 5
    assert in_cgroup[resource.RLIMIT_NPROC] == 10
    assert in_cgroup[resource.RLIMIT_CORE] == 0
    assert rlimits_for(limits, memory_in_cgroup=False)[resource.RLIMIT_AS] == GIB
    # A pids cgroup counts first (only it records the refusal); NPROC stays a backstop above it.
    backstop = rlimits_for(limits, memory_in_cgroup=True, processes_in_cgroup=True)
    assert backstop[resource.RLIMIT_NPROC] == 10 + NPROC_MARGIN
    assert "--cpu=5:6" in prlimit_arguments(in_cgroup)  # SIGXCPU first, SIGKILL a second later
    assert "--nofile=64:64" in prlimit_arguments(in_cgroup)


def test_an_exit_status_names_the_rlimit_that_ended_it() -> None:
    assert breach_of_exit(-24) is Breach.CPU  # killed by SIGXCPU
    assert breach_of_exit(128 + 24) is Breach.CPU  # bwrap, a shell, or an enter_sandbox pid 1
    assert breach_of_exit(-25) is Breach.FILE_SIZE
    assert breach_of_exit(-9) is None  # the cgroup says whether that was memory
    assert breach_of_exit(0) is None
    assert breach_of_exit(1) is None
