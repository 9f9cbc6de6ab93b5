"""The limits of one sandbox, how a per-job override meets a queue's maxima, and breach reasons.

Sizes accept plain byte counts or human text (``"4 GiB"``, ``"512MiB"``, ``"1.5 GB"``), so
settings read well: ``THEODOLITE_WORKER_JOB_LIMITS='{"memory_bytes": "4 GiB"}'``. A missing
field (None) means no limit of that kind.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> Any:
    """Bytes from ``4096``, ``"4096"``, ``"4 GiB"``, ``"1.5 GB"``; a bare K/M/G/T is binary."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"not a size: {value!r} (write e.g. 4096, '512 MiB' or '4 GiB')")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


def human_size(count: int) -> str:
    """``4294967296`` -> ``"4 GiB"``: the largest binary unit, one decimal at most."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} B"


# What an rlimit and a cgroup take: a larger value (the API's callers send any JSON number) is
# refused here rather than failing the job's start.
MOST = 2**63 - 1
ByteCount = Annotated[int, BeforeValidator(parse_size), Field(gt=0, le=MOST)]


class Breach(StrEnum):
    """The kinds of limit a sandbox can cross (what `JobCgroup.breached` and the worker report)."""

    MEMORY = "memory"
    CPU = "cpu"
    PROCESSES = "processes"
    OPEN_FILES = "open_files"
    FILE_SIZE = "file_size"
    DISK = "disk"


class SandboxLimits(BaseModel):
    """What one sandbox may use; every field optional (None: no limit of that kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_bytes: ByteCount | None = Field(
        None,
        description="Memory of the whole process tree (cgroup; else RLIMIT_AS per process).",
    )
    cpu_seconds: int | None = Field(
        None,
        gt=0,
        le=MOST,
        description="CPU time of each process (RLIMIT_CPU; a cgroup's total where polled).",
    )
    processes: int | None = Field(
        None,
        gt=0,
        le=MOST,
        description="Processes and threads at once (pids cgroup and RLIMIT_NPROC of its uid).",
    )
    open_files: int | None = Field(
        None, gt=0, le=MOST, description="Open file descriptors per process (RLIMIT_NOFILE)."
    )
    file_size_bytes: ByteCount | None = Field(
        None, description="Largest file a process may write (RLIMIT_FSIZE)."
    )
    disk_bytes: ByteCount | None = Field(
        None, description="Bytes in the work folder (polled by the worker with folder_bytes)."
    )

    def with_overrides(self, overrides: Mapping[str, Any] | SandboxLimits | None) -> SandboxLimits:
        """These limits with a job's own values (fields it sets) in place of the defaults."""
        if overrides is None:
            return self
        if isinstance(overrides, SandboxLimits):
            overrides = overrides.model_dump(exclude_none=True)
        return SandboxLimits.model_validate({**self.model_dump(), **dict(overrides)})

    def clamped(self, maxima: SandboxLimits) -> SandboxLimits:
        """Each limit at most the queue's maximum (a missing one becomes the maximum)."""
        values: dict[str, int | None] = {}
        for name in SandboxLimits.model_fields:
            own, most = getattr(self, name), getattr(maxima, name)
            values[name] = most if own is None else own if most is None else min(own, most)
        return SandboxLimits.model_validate(values)

    def over(self, maxima: SandboxLimits) -> list[str]:
        """What asks for more than the queue allows, one sentence each (a 422's problems)."""
        problems = []
        for name in SandboxLimits.model_fields:
            own, most = getattr(self, name), getattr(maxima, name)
            if own is not None and most is not None and own > most:
                asked, allowed = _shown(name, own), _shown(name, most)
                problems.append(f"limits.{name}: {asked} is over this queue's maximum {allowed}")
        return problems

    def limit_of(self, kind: Breach | str) -> int | None:
        """The value that bounds one kind of breach."""
        return getattr(self, FIELD_OF[Breach(kind)])  # type: ignore[no-any-return]


FIELD_OF = {
    Breach.MEMORY: "memory_bytes",
    Breach.CPU: "cpu_seconds",
    Breach.PROCESSES: "processes",
    Breach.OPEN_FILES: "open_files",
    Breach.FILE_SIZE: "file_size_bytes",
    Breach.DISK: "disk_bytes",
}
_WORDS = {
    Breach.MEMORY: "memory limit {} exceeded",
    Breach.CPU: "CPU time limit {} exceeded",
    Breach.PROCESSES: "process limit {} reached",
    Breach.OPEN_FILES: "open files limit {} reached",
    Breach.FILE_SIZE: "file size limit {} exceeded",
    Breach.DISK: "disk limit {} exceeded (the job's folder)",
}


# Signals the kernel sends at an rlimit (a process left to their default action dies of them).
_SIGNAL_BREACHES = {signal.SIGXCPU: Breach.CPU, signal.SIGXFSZ: Breach.FILE_SIZE}


def breach_of_exit(code: int) -> Breach | None:
    """The rlimit an exit status shows: killed by SIGXCPU or SIGXFSZ (``-24`` as subprocess
    and multiprocessing report it) or exited ``128 + signal`` (a shell, bwrap, or pid 1 of an
    `enter_sandbox` namespace, which turns those signals into that exit status)."""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    return _SIGNAL_BREACHES.get(signal.Signals(number)) if number in set(_SIGNAL_BREACHES) else None


def _shown(field: str, value: int) -> str:
    if field.endswith("_bytes"):
        return human_size(value)
    if field == "cpu_seconds":
        return f"{value} s"
    return str(value)


def breach_reason(kind: Breach | str, limits: SandboxLimits) -> str:
    """A reason a user understands: ``"memory limit 4 GiB exceeded"``."""
    breach = Breach(kind)
    value = limits.limit_of(breach)
    shown = "" if value is None else _shown(FIELD_OF[breach], value)
    return " ".join(_WORDS[breach].format(shown).split())
