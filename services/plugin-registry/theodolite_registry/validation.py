"""Validating a candidate plugin in a sandbox (``sandboxing``) with a time and a memory limit,
so that a plugin whose import hangs, allocates without bound, reads the environment, reaches
the network or lies about its result cannot hurt or fool the registry.

The sandbox reports over a pipe of its own (its write end passed in, its number in argv), never
over stdout; a run counts only when that pipe holds one complete JSON line and the sandbox
exited 0. Whatever the result says is then checked here: the wheel must be a regular file inside
the work folder, and its name, version and entry point are read again from that wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import signal
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from theodolite.problems import PLUGIN_NAME_PATTERN, PLUGIN_VERSION_PATTERN, Problem
from theodolite.sandbox.limits import SandboxLimits
from theodolite.web.errors import DomainError
from theodolite_registry.problem_report import output_tail
from theodolite_registry.sandboxing import (
    PYTHON,
    ValidationSandbox,
    validation_environment,
    weak_preexec,
)
from theodolite_registry.wheel_identity import WheelProblem, wheel_identity

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 16 * 2**20
MAX_OUTPUT_BYTES = 64 * 2**10  # of stdout and stderr each, kept for the log and a crash reason
MAX_WHEEL_BYTES = 512 * 2**20
# Processes and threads of one validation (RLIMIT_NPROC of its own uid): pip's build and an
# import's thread pools fit; a fork bomb stops there.
VALIDATION_PROCESSES = 64


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


@dataclass
class _Run:
    returncode: int
    result: bytes
    stderr: bytes


async def _read_all(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything up to end of file, keeping at most ``limit`` bytes (the rest is drained)."""
    kept = bytearray()
    while chunk := await stream.read(1 << 16):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


async def _run(
    command: list[str],
    work: Path,
    fds: tuple[int, int],
    limits: SandboxLimits,
    sandboxed: bool,
    timeout_s: float,
) -> _Run:
    """Run one validation; what its result pipe held, its exit status and its stderr."""
    result_read, result_write = fds
    loop = asyncio.get_running_loop()
    result_stream = asyncio.StreamReader(limit=MAX_RESULT_BYTES)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(result_stream), os.fdopen(result_read, "rb", 0)
    )
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(result_write,),
            env=validation_environment(),  # bwrap clears it anyway; the fallback has only this
            cwd=work,
            start_new_session=sandboxed,  # the fallback's preexec makes its own session
            preexec_fn=None if sandboxed else (lambda: weak_preexec(limits)),
        )
    finally:
        os.close(result_write)  # only the child holds it now: its exit is end of file
    assert process.stdout is not None and process.stderr is not None
    outputs = asyncio.gather(
        _read_all(process.stdout, MAX_OUTPUT_BYTES),
        _read_all(process.stderr, MAX_OUTPUT_BYTES),
        _read_all(result_stream, MAX_RESULT_BYTES + 1),
        process.wait(),
    )
    try:
        _out, err, result, returncode = await asyncio.wait_for(outputs, timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # bwrap: its sandbox dies with it
        await process.wait()
        raise ValidationFailed(
            "timeout", f"validation took longer than the time limit of {timeout_s:g} s"
        ) from None
    finally:
        transport.close()
    return _Run(returncode, result, err)


def _parse(run: _Run, roots: list[Path], memory_bytes: int) -> dict[str, Any]:
    """The sandbox's result, if it is one: exit 0 and one complete JSON object."""
    signal_number = -run.returncode if run.returncode < 0 else run.returncode - 128
    if run.returncode != 0:
        memory_mb = memory_bytes // 2**20
        if b"MemoryError" in run.stderr or signal_number == signal.SIGKILL:
            raise ValidationFailed(
                "memory",
                f"validation was killed (exit {run.returncode}): most likely the memory "
                f"limit of {memory_mb} MiB",
            )
        tail = output_tail(run.stderr.decode(errors="replace"), roots, 800)
        raise ValidationFailed("crash", f"validation crashed (exit {run.returncode}): {tail}")
    if not run.result.endswith(b"\n") or len(run.result) > MAX_RESULT_BYTES:
        raise ValidationFailed(
            "incomplete",
            "validation ended without reporting a result (exit 0): the plugin's import "
            "ended the process (os._exit, sys.exit) before validation finished",
        )
    try:
        result = json.loads(run.result)
    except ValueError:
        result = None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise ValidationFailed("incomplete", "validation reported no readable result")
    return result


def _wheel_in(work: Path, reported: object) -> bytes:
    """The bytes of the wheel the result names, if it is a regular file inside ``work``."""
    refused = ValidationFailed("wheel", "the reported wheel is not a file inside the work folder")
    if not isinstance(reported, str) or not os.path.isabs(reported):
        raise refused
    path = Path(reported)
    if not path.is_relative_to(work) or ".." in path.parts:
        raise refused
    real = Path(os.path.realpath(path))
    if real != Path(os.path.realpath(work)) / path.relative_to(work):
        raise refused  # a symlink on the way (out of the folder or not)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise refused from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise refused  # a folder, a device, a fifo, or a hard link to a file elsewhere
    with os.fdopen(fd, "rb") as wheel:
        if info.st_size > MAX_WHEEL_BYTES:
            raise ValidationFailed("wheel", f"the wheel is larger than {MAX_WHEEL_BYTES} bytes")
        return wheel.read(MAX_WHEEL_BYTES + 1)


def _checked(result: dict[str, Any], work: Path) -> ValidatedPlugin:
    if not result["ok"]:
        raise ValidationFailed(str(result.get("kind", "invalid")), str(result.get("reason", "")))
    wheel = _wheel_in(work, result.get("wheel"))
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            identity = wheel_identity(archive)
    except (zipfile.BadZipFile, WheelProblem) as exc:
        raise ValidationFailed("wheel", f"the reported wheel is no wheel: {exc}") from None
    declared = [(plugin, module) for plugin, module in identity.entry_points.items()]
    reported = (result.get("plugin"), result.get("module"))
    if (identity.distribution, identity.version) != (
        result.get("distribution"),
        result.get("version"),
    ) or declared != [reported]:
        raise ValidationFailed(
            "incomplete", "the validation's result does not match the wheel it names"
        )
    plugin, version = str(reported[0]), identity.version
    # Every stored plugin must be reachable at /plugins/{name}/{version}.
    if not re.fullmatch(PLUGIN_NAME_PATTERN, plugin):
        raise ValidationFailed("metadata", f"plugin name {plugin!r} is not a PEP 508 project name")
    if not re.fullmatch(PLUGIN_VERSION_PATTERN, version):
        raise ValidationFailed("metadata", f"version {version!r} is not a PEP 440 version")
    tasks = result.get("tasks")
    if not isinstance(tasks, dict):
        raise ValidationFailed("incomplete", "the validation's result names no tasks")
    return ValidatedPlugin(
        plugin=plugin,
        distribution=identity.distribution,
        version=version,
        module=str(reported[1]),
        tasks=tasks,
        wheel=wheel,
    )


async def validate_plugin(
    data: bytes,
    filename: str,
    *,
    timeout_s: float,
    memory_mb: int,
    sandbox: ValidationSandbox | None = None,
) -> ValidatedPlugin:
    """Build, import and describe a candidate in a sandbox; raise ValidationFailed naming the
    reason (IsolationRefused where the host has no sandbox and weaker isolation is not
    accepted)."""
    sandbox = sandbox or ValidationSandbox()
    limits = SandboxLimits(
        memory_bytes=memory_mb * 2**20,
        cpu_seconds=max(1, int(timeout_s) + 1),
        processes=VALIDATION_PROCESSES,
        open_files=1024,
        file_size_bytes=MAX_WHEEL_BYTES,
    )
    uid = await asyncio.to_thread(sandbox.acquire_uid)
    try:
        with tempfile.TemporaryDirectory(
            prefix="theodolite-plugin-", ignore_cleanup_errors=True
        ) as tmp:
            work = Path(tmp) / "work"
            work.mkdir(mode=0o711)  # bwrap, without CAP_DAC_OVERRIDE, must enter it
            archive = work / (Path(filename).name or "plugin")
            await asyncio.to_thread(archive.write_bytes, data)
            result_read, result_write = os.pipe()
            argv = [*PYTHON, "-m", "theodolite_registry.inspect_plugin"]
            argv += ["--result-fd", str(result_write), str(archive), str(work)]
            try:
                command = sandbox.command(work, uid, argv, result_fd=result_write, limits=limits)
            except BaseException:
                os.close(result_read)
                os.close(result_write)
                raise
            fds = (result_read, result_write)
            run = await _run(command, work, fds, limits, uid is not None, timeout_s)
            roots = [work / "unpacked", work / "source", work]
            result = _parse(run, roots, limits.memory_bytes or 0)
            if not result["ok"]:
                log.info("plugin %s rejected: %s", filename, result.get("reason"))
            return await asyncio.to_thread(_checked, result, work)
    finally:
        sandbox.release_uid(uid)
