"""The worker's settings: the shared concerns plus how this worker runs jobs."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, IPvAnyNetwork, SecretStr
from pydantic_settings import SettingsConfigDict

from theodolite.sandbox.limits import SandboxLimits
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


# What a job may use unless it asks for other limits (within the maxima below).
DEFAULT_JOB_LIMITS = SandboxLimits.model_validate(
    {
        "memory_bytes": "4 GiB",
        "cpu_seconds": 4 * 3600,
        "processes": 1024,  # threads count too (torch starts one per core)
        "open_files": 4096,
        "file_size_bytes": "16 GiB",
        "disk_bytes": "32 GiB",
    }
)
# The most a job of this worker's queue may ask for.
DEFAULT_MAX_LIMITS = SandboxLimits.model_validate(
    {
        "memory_bytes": "32 GiB",
        "cpu_seconds": 7 * 24 * 3600,
        "processes": 8192,
        "open_files": 65536,
        "file_size_bytes": "256 GiB",
        "disk_bytes": "512 GiB",
    }
)


def _over_defaults(defaults: SandboxLimits) -> Callable[[Any], Any]:
    """A setting names only the limits it changes (``null`` removes one): the rest stay."""

    def merge(value: Any) -> Any:
        if isinstance(value, dict):
            return defaults.with_overrides(value)
        return value

    return merge


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
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus /metrics (warm pool, job start times, "
        "slots); unset: none served.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address /metrics binds (0.0.0.0 in a container Prometheus scrapes).",
    )
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
    sandbox: bool = Field(
        True,
        description="Run every job in a sandbox of its own: own uid, private mounts (its folder "
        "writable; interpreter, site-packages and caches read-only), PID and network namespaces, "
        "limits. Off only for development on a host that has no namespaces.",
    )
    accept_weak_isolation: bool = Field(
        False,
        description="Start even where the host allows no namespaces (jobs then run without a "
        "sandbox, with the allow-listed environment and what cgroups and rlimits allow); the "
        "worker logs loudly what is missing. Without it the worker refuses to start there.",
    )
    job_limits: Annotated[SandboxLimits, BeforeValidator(_over_defaults(DEFAULT_JOB_LIMITS))] = (
        Field(
            default_factory=lambda: DEFAULT_JOB_LIMITS,
            description="Limits of a job that asks for none of its own (JSON; sizes as '4 GiB').",
        )
    )
    max_limits: Annotated[SandboxLimits, BeforeValidator(_over_defaults(DEFAULT_MAX_LIMITS))] = (
        Field(
            default_factory=lambda: DEFAULT_MAX_LIMITS,
            description="The most a job of this worker's queue may ask for; a job's own limits are "
            "clamped to these.",
        )
    )
    sandbox_uid_base: int = Field(
        100_000,
        gt=0,
        description="Jobs run as uid (and gid) base + slot: one uid per running job, never the "
        "worker's. Replicas on one host should take ranges that do not overlap.",
    )
    disk_poll_interval_s: float = Field(
        2.0, gt=0, description="Seconds between checks of a running job's folder size."
    )
    limits_poll_interval_s: float = Field(
        0.5, gt=0, description="Seconds between checks of a running job's cgroup for a breach."
    )
    job_proxies: dict[str, str] = Field(
        default_factory=dict,
        description="Proxy settings jobs get (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY).",
    )
    env_cache_dir: Path | None = Field(
        None,
        description="Where built python_env environments are cached, one folder per environment "
        "file hash and Python (default: work_dir/environments). Replicas on one host may share it.",
    )
    env_index_url: str | None = Field(
        None,
        description="The package index python_env builds install from (uv's default index: "
        "PyPI, when unset).",
    )
    env_build_timeout_s: float = Field(
        900.0, gt=0, description="Longest one step of a python_env build may take."
    )
    conda_channels: list[str] = Field(
        default_factory=list,
        description="The channels every conda_env is solved from, in order, instead of the "
        "environment file's (a mirror, a file:// channel). Unset: the file's channels, by name, "
        "through conda or micromamba on PATH; py-rattler builds conda_env only once this is set.",
    )
    readable_buckets: list[str] = Field(
        default_factory=list,
        description="Buckets (or bucket/prefix folders) of the worker's own S3 server whose "
        "s3:// path values it downloads for jobs, before the job starts and with its own "
        "credentials, which the job never sees. Empty: s3:// paths are refused at submission.",
    )
    http_downloads: bool = Field(
        False,
        description="Download http(s):// path values for jobs (public addresses only, unless "
        "http_download_allow_networks names more). Off: refused at submission.",
    )
    http_download_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks http(s) downloads may reach although they are not global "
        '(loopback, private, ...), as a JSON list of CIDRs, e.g. ["10.20.0.0/16"].',
    )
    download_max_bytes: int = Field(
        2**30, gt=0, description="Largest file one s3:// or http(s):// path value may be."
    )
    download_timeout_s: float = Field(
        300.0, gt=0, description="Longest one s3:// or http(s):// download may take."
    )
