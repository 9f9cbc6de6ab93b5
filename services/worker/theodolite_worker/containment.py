"""One job attempt's containment, assembled around its run: the allow-listed environment, the
MLflow proxy and Prefect relay it reaches the world through, its sandbox, and the watch that ends
it at the first limit it crosses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from theodolite.sandbox.disk import folder_bytes
from theodolite.sandbox.environment import sandbox_environment
from theodolite.sandbox.limits import Breach, SandboxLimits, breach_of_exit, breach_reason
from theodolite.sdk.protocol import PLUGINS_ENV, RESULT_FILE_ENV
from theodolite_worker.execution import ExecutionResult, JobExecution
from theodolite_worker.relay import tcp_relay
from theodolite_worker.sandbox_entry import LoopbackForward
from theodolite_worker.sandboxing import JobSandbox, Sandboxes
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.tracking_proxy.forward import TRACKING_URI_ENV
from theodolite_worker.tracking_proxy.server import job_tracking_proxy

log = logging.getLogger(__name__)

# A job reaches MLflow only through its tracking proxy: presigned URLs point at the artifact
# store itself, which the job cannot reach (and the proxy refuses them). MLflow's client asks
# for them when the server offers multipart transfers, unless told not to.
NO_PRESIGNED_URLS = {
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
}
# Besides the core's allow-list: what the SDK, graphs and the tracking client read.
JOB_VARIABLES = frozenset(
    {
        "THEODOLITE_DEVICE",
        RESULT_FILE_ENV,
        PLUGINS_ENV,
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "DO_NOT_TRACK",
        "MLFLOW_DISABLE_TELEMETRY",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
        *NO_PRESIGNED_URLS,
    }
)
# Taken from the worker's own environment when set (none is a credential).
PASSED_ON = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "DO_NOT_TRACK",
    "MLFLOW_DISABLE_TELEMETRY",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "PREFECT_API_URL",
)
# Until its forwarder starts, inside the sandbox (which then sets the real loopback URL).
TRACKING_PLACEHOLDER = "http://127.0.0.1:9"


def job_environment(
    settings: WorkerSettings,
    job_id: uuid.UUID,
    run_id: str,
    experiment_id: str,
    *,
    home: Path,
    attempt: int = 1,
    tracking_uri: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A job's whole environment, from the allow-list only: never the worker's credentials."""
    # MLflow Projects would take ``python`` from PATH; jobs get the worker's own interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    job_vars = {
        "PATH": path,
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        TRACKING_URI_ENV: tracking_uri or settings.mlflow.tracking_uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": experiment_id,
        "THEODOLITE_JOB_ID": str(job_id),
        # Which try this is (a job keeps nothing between attempts: each has a /tmp of its own).
        "THEODOLITE_JOB_ATTEMPT": str(attempt),
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": settings.gpus or "",
        # Which device the job's code should use (the SDK reads it).
        "THEODOLITE_DEVICE": "cuda" if settings.gpus else "cpu",
        **NO_PRESIGNED_URLS,
        **{name: os.environ[name] for name in PASSED_ON if name in os.environ},
        **(extra or {}),
    }
    return sandbox_environment(job_vars, proxies=settings.job_proxies or None, allow=JOB_VARIABLES)


@dataclass
class Containment:
    """What a job attempt runs with: its environment and, where contained, its sandbox."""

    env: dict[str, str]
    sandbox: JobSandbox | None


@contextlib.asynccontextmanager
async def contained(
    sandboxes: Sandboxes,
    settings: WorkerSettings,
    *,
    job_id: uuid.UUID,
    attempt: int,
    run_id: str,
    run_artifact_uri: str | None,
    experiment_id: str,
    readable_experiments: Iterable[str] = (),
    job_dir: Path,
    limits: SandboxLimits,
    read_only: Iterable[Path],
    extra_env: Mapping[str, str],
) -> AsyncIterator[Containment]:
    """The attempt's environment and sandbox, its proxy and relay serving, while the block runs;
    afterwards every process of the sandbox is gone and its uid free. The proxy lets the job read
    ``experiment_id`` and ``readable_experiments`` (the job message's, checked at submission)."""
    if not sandboxes.contained:
        env = job_environment(
            settings, job_id, run_id, experiment_id, home=job_dir, attempt=attempt
        )
        yield Containment(env={**env, **extra_env}, sandbox=None)
        return
    sockets = sandboxes.sockets_dir(job_id, attempt)
    await asyncio.to_thread(_fresh_folder, sockets)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                job_tracking_proxy(
                    socket_path=sockets / "mlflow.sock",
                    upstream=settings.mlflow.tracking_uri,
                    run_id=run_id,
                    experiment_id=experiment_id,
                    readable_experiments=readable_experiments,
                    run_artifact_uri=run_artifact_uri,
                )
            )
            forwards = [LoopbackForward(str(sockets / "mlflow.sock"), url_env=TRACKING_URI_ENV)]
            if sandboxes.prefect is not None:
                _, host, port = sandboxes.prefect
                await stack.enter_async_context(tcp_relay(sockets / "prefect.sock", host, port))
                forwards.append(LoopbackForward(str(sockets / "prefect.sock"), port=port))
            env = job_environment(
                settings,
                job_id,
                run_id,
                experiment_id,
                home=job_dir,
                attempt=attempt,
                tracking_uri=TRACKING_PLACEHOLDER,
                extra=extra_env,
            )
            sandbox = await asyncio.to_thread(
                sandboxes.open,
                name=f"job-{job_id}-{attempt}",
                work_dir=job_dir,
                env=env,
                limits=limits,
                read_only=(*read_only, sockets),
                forwards=forwards,
            )
            stack.callback(sandboxes.close, sandbox)
            yield Containment(env=env, sandbox=sandbox)
    finally:
        await asyncio.to_thread(shutil.rmtree, sockets, True)


def _fresh_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o755)
    os.chmod(path, 0o755)


@contextlib.asynccontextmanager
async def watching_limits(
    sandbox: JobSandbox | None,
    execution: JobExecution,
    *,
    interval_s: float,
    disk_interval_s: float,
) -> AsyncIterator[None]:
    """While the block runs, end the job at the first limit it crosses (cgroup, folder size)."""
    if sandbox is None:
        yield
        return
    watch = asyncio.create_task(_watch(sandbox, execution, interval_s, disk_interval_s))
    try:
        yield
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def _watch(
    sandbox: JobSandbox, execution: JobExecution, interval_s: float, disk_interval_s: float
) -> None:
    limits, work_dir = sandbox.limits, sandbox.policy.work_dir
    loop = asyncio.get_running_loop()
    disk_due = loop.time()
    while True:
        kind = sandbox.cgroup.breached() if sandbox.cgroup is not None else None
        if kind is None and limits.disk_bytes is not None and loop.time() >= disk_due:
            used = await asyncio.to_thread(folder_bytes, work_dir)
            kind = Breach.DISK if used > limits.disk_bytes else None
            disk_due = loop.time() + disk_interval_s
        if kind is not None:
            reason = breach_reason(kind, limits)
            log.info("job in %s: %s", work_dir, reason)
            execution.end_for_breach(reason)
            return
        await asyncio.sleep(interval_s)


def breach_after(result: ExecutionResult, sandbox: JobSandbox | None) -> str | None:
    """The limit the job crossed, in words, however it ended (None: none)."""
    if result.breach is not None or sandbox is None or result.exit_code == 0:
        return result.breach
    if result.stopped or result.timed_out:
        return None
    kind = sandbox.cgroup.breached() if sandbox.cgroup is not None else None
    kind = kind or breach_of_exit(result.exit_code) or _breach_on_disk(sandbox)
    return None if kind is None else breach_reason(kind, sandbox.limits)


def _breach_on_disk(sandbox: JobSandbox) -> Breach | None:
    """A full folder, or a file at the size limit (Python ignores SIGXFSZ: the job saw EFBIG)."""
    limits, work_dir = sandbox.limits, sandbox.policy.work_dir
    if limits.disk_bytes is not None and folder_bytes(work_dir) > limits.disk_bytes:
        return Breach.DISK
    if limits.file_size_bytes is not None:
        for root, _, files in os.walk(work_dir):
            for name in files:
                with contextlib.suppress(OSError):
                    if os.lstat(os.path.join(root, name)).st_size >= limits.file_size_bytes:
                        return Breach.FILE_SIZE
    return None
