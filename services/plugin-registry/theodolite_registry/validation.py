"""Validating a candidate plugin in a subprocess with a time limit and a memory limit, so a
plugin whose import hangs or allocates without bound cannot hang or kill the registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theodolite.problems import PLUGIN_NAME_PATTERN, PLUGIN_VERSION_PATTERN, Problem
from theodolite.web.errors import DomainError


class ValidationFailed(DomainError, status_code=422, title="Invalid plugin"):
    """The candidate is no usable plugin; ``kind`` says which check failed."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason, [Problem(field=f"archive ({kind})", message=reason)])
        self.kind = kind
        self.reason = reason


@dataclass
class ValidatedPlugin:
    plugin: str
    distribution: str
    version: str
    module: str
    tasks: dict[str, Any]
    wheel: bytes


def _limits(memory_bytes: int) -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.setsid()  # its own process group: a timeout kills everything it started


async def validate_plugin(
    data: bytes, filename: str, *, timeout_s: float, memory_mb: int
) -> ValidatedPlugin:
    """Build, import and describe a candidate; raise ValidationFailed naming the reason."""
    with tempfile.TemporaryDirectory(prefix="theodolite-plugin-") as tmp:
        archive = Path(tmp) / (Path(filename).name or "plugin")
        await asyncio.to_thread(archive.write_bytes, data)
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "theodolite_registry.inspect_plugin",
            str(archive),
            str(workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=lambda: _limits(memory_mb * 2**20),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise ValidationFailed(
                "timeout", f"validation took longer than the time limit of {timeout_s:g} s"
            ) from None
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            result = None
        if result is None:
            if process.returncode and process.returncode < 0 or b"MemoryError" in err:
                raise ValidationFailed(
                    "memory",
                    f"validation was killed (exit {process.returncode}): most likely the memory "
                    f"limit of {memory_mb} MiB",
                )
            raise ValidationFailed(
                "crash", f"validation crashed (exit {process.returncode}): {err.decode()[-800:]}"
            )
        if not result["ok"]:
            raise ValidationFailed(result["kind"], result["reason"])
        # Every stored plugin must be reachable at /plugins/{name}/{version}.
        if not re.fullmatch(PLUGIN_NAME_PATTERN, result["plugin"]):
            raise ValidationFailed(
                "metadata", f"plugin name {result['plugin']!r} is not a PEP 508 project name"
            )
        if not re.fullmatch(PLUGIN_VERSION_PATTERN, result["version"]):
            raise ValidationFailed(
                "metadata", f"version {result['version']!r} is not a PEP 440 version"
            )
        return ValidatedPlugin(
            plugin=result["plugin"],
            distribution=result["distribution"],
            version=result["version"],
            module=result["module"],
            tasks=result["tasks"],
            wheel=await asyncio.to_thread(Path(result["wheel"]).read_bytes),
        )
