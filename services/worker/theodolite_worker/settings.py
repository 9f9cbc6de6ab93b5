"""The worker's settings: the shared concerns plus how this worker runs jobs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from theodolite.settings import ArchiveLimitSettings, CommonSettings

# What entry points import, imported once by the warm pool (those that are installed).
DEFAULT_WARM_PRELOAD = (
    "numpy",
    "sklearn",
    "torch",
    "art",
    "mlflow",
    "prefect",
    "prefect.flows",
    "prefect.tasks",
    # Theodolite's own command line and graph runner (plugins load per job, never here).
    "theodolite.cli",
    "theodolite.graphs.command",
)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_WORKER_")

    queue: str = Field("cpu", description="The queue this worker serves.")
    api_url: str = Field(
        "http://127.0.0.1:8001",
        description="The api's internal listener, which arbitrates who runs each attempt.",
    )
    token: SecretStr | None = Field(
        None,
        description="This worker's own credential on the api's internal listener (derived by the "
        "deployment from the api's worker secret and worker_id); the api refuses claims without.",
    )
    shutdown_grace_s: float = Field(
        60.0, description="On SIGTERM, how long running jobs may finish before being handed back."
    )
    worker_id: str = Field(default_factory=_default_worker_id, description="Unique worker name.")
    slots: int = Field(1, ge=1, description="Jobs run at once (the consumer's prefetch).")
    gpus: str | None = Field(
        None,
        description="CUDA_VISIBLE_DEVICES for jobs (GPU workers); None hides every GPU.",
    )
    work_dir: Path = Field(
        Path.home() / ".cache" / "theodolite" / "worker",
        description="Archive cache and job folders.",
    )
    keep_job_dirs: bool = Field(False, description="Keep each job's folder after it ends.")
    heartbeat_interval_s: float = Field(5.0, description="Seconds between heartbeats.")
    log_flush_interval_s: float = Field(0.25, description="Longest a log line waits to be sent.")
    log_batch_lines: int = Field(200, description="Most log lines in one job.log event.")
    log_tail_lines: int = Field(50, description="Log lines carried by the terminal event.")
    plugin_announce_interval_s: float = Field(
        60.0, description="Seconds between announcements of the plugins jobs here can use."
    )
    kill_grace_s: float = Field(5.0, description="SIGTERM to SIGKILL delay for a job's processes.")
    warm_pool: bool = Field(
        True,
        description="Start plain Python entry points (python SCRIPT.py, python -m MODULE, "
        "theodolite) in a warm pool of processes with the job libraries already imported.",
    )
    warm_pool_preload: list[str] = Field(
        default_factory=lambda: list(DEFAULT_WARM_PRELOAD),
        description="Modules the warm pool imports once (those not installed are skipped).",
    )
    archive_limits: ArchiveLimitSettings = Field(default_factory=ArchiveLimitSettings)
