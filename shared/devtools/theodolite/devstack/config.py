"""Where the local stack listens and keeps its state: ``StackConfig``, the Quickstart's
defaults, and free ports for a stack of one's own."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Free ports p whose p + 10000 is free too (SeaweedFS puts gRPC there)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 29999)
        if port not in chosen and _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class StackConfig:
    """Where everything listens and keeps its state. Defaults are the Quickstart's."""

    state_dir: Path = Path(".stack")
    api_port: int = 8000
    api_internal_port: int = 8001  # the workers' listener (claims)
    mlflow_port: int = 5000
    prefect_port: int = 4200
    registry_port: int = 8100
    s3_port: int = 9000
    # SeaweedFS's internal listeners (each also opens port + 10000 for gRPC).
    s3_master_port: int = 9333
    s3_volume_port: int = 8080
    s3_filer_port: int = 8888
    s3_admin_port: int = 23646
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432"
    database: str = "theodolite"
    mlflow_database: str = "mlflow"
    prefect_database: str = "prefect"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    s3_access_key: str = "theodolite"
    s3_secret_key: str = "theodolite-dev-secret"
    entrypoint_bucket: str = "theodolite-entrypoints"
    mlflow_bucket: str = "theodolite-mlflow"
    plugin_bucket: str = "theodolite-plugins"
    worker_queues: tuple[str, ...] = ("cpu",)
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_internal_url(self) -> str:
        return f"http://127.0.0.1:{self.api_internal_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_url}/api"  # the /api suffix matters to Prefect clients

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    @property
    def admin_key_file(self) -> Path:
        return self.state_dir / "admin.key"

    def admin_key(self) -> str | None:
        """The first administrator's key, as the stack's bootstrap wrote it."""
        if not self.admin_key_file.exists():
            return None
        return self.admin_key_file.read_text().strip()

    @property
    def worker_secret_file(self) -> Path:
        return self.state_dir / "worker.secret"

    def worker_secret(self) -> str:
        """The stack's worker secret (the api's THEODOLITE_API_WORKER_SECRET): made once per
        stack, in ``worker_secret_file`` (mode 0600), so every process of the stack agrees."""
        if not self.worker_secret_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.worker_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
        return self.worker_secret_file.read_text().strip()

    def worker_token(self, worker_id: str) -> str:
        """``worker_id``'s own token (as the api derives it: its id and an HMAC-SHA256 of it)."""
        key = self.worker_secret().encode()
        return f"{worker_id}.{hmac.new(key, worker_id.encode(), hashlib.sha256).hexdigest()}"

    def auth_headers(self) -> dict[str, str]:
        key = self.admin_key()
        return {} if key is None else {"Authorization": f"Bearer {key}"}

    def database_url(self, driver: str, name: str) -> str:
        parts = urlsplit(self.postgres_url)
        return urlunsplit((f"postgresql+{driver}", parts.netloc, f"/{name}", "", ""))

    def service_env(self) -> dict[str, str]:
        """What the api and workers need to find everything."""
        return {
            **TELEMETRY_OFF,
            "THEODOLITE_DB_URL": self.database_url("asyncpg", self.database),
            "THEODOLITE_BROKER_URL": self.broker_url,
            "THEODOLITE_S3_ENDPOINT": self.s3_endpoint,
            "THEODOLITE_S3_ACCESS_KEY": self.s3_access_key,
            "THEODOLITE_S3_SECRET_KEY": self.s3_secret_key,
            "THEODOLITE_S3_ENTRYPOINT_BUCKET": self.entrypoint_bucket,
            "THEODOLITE_S3_PLUGIN_BUCKET": self.plugin_bucket,
            "THEODOLITE_API_REGISTRY_URL": self.registry_url,
            "THEODOLITE_MLFLOW_TRACKING_URI": self.mlflow_url,
            # Jobs run task graphs as Prefect flows against the shared server: an ephemeral
            # server would cost each job 15-30 s.
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_HOME": str((self.state_dir / "prefect-client").resolve()),
            **self.extra_env,
        }
