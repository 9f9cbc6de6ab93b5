"""The local stack without Docker: S3 server (SeaweedFS), MLflow server, api and workers as
background processes on 127.0.0.1, beside the machine's own PostgreSQL and RabbitMQ.

Used by ``theodolite stack up/down`` (the Quickstart) and by the integration tests, which start
their own copy on free ports with their own databases and RabbitMQ vhost.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


class StackError(RuntimeError):
    pass


# Processes this interpreter started, kept so they can be reaped (a zombie still looks alive
# to ``kill(pid, 0)``) and so Popen does not warn that it was dropped while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


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


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def isolated_config(state_dir: Path, extra_env: dict[str, str] | None = None) -> StackConfig:
    """A stack on free ports with its own databases and RabbitMQ vhost (tests, benchmarks),
    which never sees the state of the Quickstart stack or of another run on this machine.
    Create it with ``up_isolated`` and remove everything with ``down_isolated``."""
    suffix = secrets.token_hex(4)
    api, mlflow, prefect, registry, s3, master, volume, filer, admin = free_ports(9)
    return StackConfig(
        state_dir=state_dir,
        api_port=api,
        mlflow_port=mlflow,
        prefect_port=prefect,
        registry_port=registry,
        s3_port=s3,
        s3_master_port=master,
        s3_volume_port=volume,
        s3_filer_port=filer,
        s3_admin_port=admin,
        database=f"theodolite_{suffix}",
        mlflow_database=f"mlflow_{suffix}",
        prefect_database=f"prefect_{suffix}",
        broker_url=f"amqp://guest:guest@127.0.0.1:5672/theodolite-{suffix}",
        extra_env=extra_env or {},
    )


def _vhost(config: StackConfig) -> str:
    return urlsplit(config.broker_url).path.lstrip("/")


def up_isolated(config: StackConfig) -> None:
    _rabbitmqctl("add_vhost", _vhost(config))
    _rabbitmqctl("set_permissions", "-p", _vhost(config), "guest", ".*", ".*", ".*")
    up(config, say=lambda line: None)


def down_isolated(config: StackConfig) -> None:
    down(config, say=lambda line: None)
    for name in (config.database, config.mlflow_database, config.prefect_database):
        drop_database(config, name)
    _rabbitmqctl("delete_vhost", _vhost(config))


@dataclass
class StackConfig:
    """Where everything listens and keeps its state. Defaults are the Quickstart's."""

    state_dir: Path = Path(".stack")
    api_port: int = 8000
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


def _bin(config: StackConfig, name: str) -> str:
    candidate = Path(config.python).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed (pip install 'theodolite[stack]')")
    return found


def _pidfile(config: StackConfig, name: str) -> Path:
    return config.state_dir / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(config: StackConfig, name: str) -> int | None:
    path = _pidfile(config, name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    return pid if _alive(pid) else None


def start_process(config: StackConfig, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start ``argv`` in its own session (so stopping it stops its children), log to a file."""
    if (pid := running_pid(config, name)) is not None:
        return pid
    logs = config.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pidfile(config, name).parent.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children[process.pid] = process
    _pidfile(config, name).write_text(str(process.pid))
    return process.pid


def stop_process(config: StackConfig, name: str, grace_s: float = 10.0) -> bool:
    pid = running_pid(config, name)
    _pidfile(config, name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        # The leader alone, as a container runtime does: it stops its own children in order.
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    try:  # whatever of its group is left (or the leader itself, past the grace period)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
    return True


def log_tail(config: StackConfig, name: str, lines: int = 30) -> str:
    path = config.state_dir / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(config: StackConfig, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if running_pid(config, name) is None:
            raise StackError(f"{name} exited while starting:\n{log_tail(config, name)}")
        time.sleep(0.2)
    raise StackError(f"{name} not ready after {timeout_s:.0f} s:\n{log_tail(config, name)}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


async def _ensure_database(postgres_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{postgres_url}/postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(postgres_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{postgres_url}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def ensure_database(config: StackConfig, name: str) -> None:
    asyncio.run(_ensure_database(config.postgres_url, name))


def drop_database(config: StackConfig, name: str) -> None:
    asyncio.run(_drop_database(config.postgres_url, name))


def start_object_store(config: StackConfig) -> None:
    data = (config.state_dir / "s3").resolve()
    data.mkdir(parents=True, exist_ok=True)
    identities = data / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "theodolite",
                        "credentials": [
                            {"accessKey": config.s3_access_key, "secretKey": config.s3_secret_key}
                        ],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    start_process(
        config,
        "s3",
        [
            _bin(config, "weed"),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={config.s3_port}",
            f"-master.port={config.s3_master_port}",
            f"-volume.port={config.s3_volume_port}",
            f"-filer.port={config.s3_filer_port}",
            f"-admin.port={config.s3_admin_port}",
            f"-s3.config={identities}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            # The default sockets in /tmp collide between stacks running side by side.
            f"-s3.localSocket={data}/s3.sock",
            f"-filer.localSocket={data}/filer.sock",
        ],
        TELEMETRY_OFF,
    )
    wait_until(config, "s3", http_ok(f"http://{config.s3_endpoint}/healthz"), 60)

    from theodolite.settings import StorageSettings
    from theodolite.storage import ObjectStore

    store = ObjectStore(
        StorageSettings(
            endpoint=config.s3_endpoint,
            access_key=config.s3_access_key,
            secret_key=config.s3_secret_key,
        )
    )
    for bucket in (config.entrypoint_bucket, config.mlflow_bucket, config.plugin_bucket):
        for attempt in range(20):  # the S3 gateway answers health before its filer is ready
            try:
                store.ensure_bucket(bucket)
                break
            except Exception:
                if attempt == 19:
                    raise
                time.sleep(0.5)


def start_mlflow(config: StackConfig) -> None:
    ensure_database(config, config.mlflow_database)
    start_process(
        config,
        "mlflow",
        [
            _bin(config, "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(config.mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            config.database_url("psycopg2", config.mlflow_database),
            "--artifacts-destination",
            f"s3://{config.mlflow_bucket}/artifacts",
        ],
        {
            **TELEMETRY_OFF,
            "MLFLOW_S3_ENDPOINT_URL": f"http://{config.s3_endpoint}",
            "AWS_ACCESS_KEY_ID": config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": config.s3_secret_key,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
    )
    wait_until(config, "mlflow", http_ok(f"{config.mlflow_url}/health"), 120)


def start_prefect(config: StackConfig) -> None:
    ensure_database(config, config.prefect_database)
    start_process(
        config,
        "prefect",
        [
            _bin(config, "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(config.prefect_port),
        ],
        {
            **TELEMETRY_OFF,
            "PREFECT_HOME": str((config.state_dir / "prefect-server").resolve()),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": config.database_url(
                "asyncpg", config.prefect_database
            ),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(config.prefect_port),
        },
    )
    wait_until(config, "prefect", http_ok(f"{config.prefect_api_url}/health"), 120)


def start_registry(config: StackConfig) -> None:
    ensure_database(config, config.database)
    start_process(
        config,
        "registry",
        [config.python, "-m", "theodolite_registry"],
        {
            **config.service_env(),
            "THEODOLITE_REGISTRY_HOST": "127.0.0.1",
            "THEODOLITE_REGISTRY_PORT": str(config.registry_port),
        },
    )
    wait_until(config, "registry", http_ok(f"{config.registry_url}/readyz"), 60)


def publish_builtin_plugins(config: StackConfig, plugins_dir: Path = Path("plugins")) -> list[str]:
    """Publish every plugin folder (idempotent: the same files give the same bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    from theodolite.client import pack_folder

    def publish(folder: Path) -> str:
        response = httpx.post(
            f"{config.registry_url}/api/v1/plugins",
            files={"archive": (f"{folder.name}.tar.gz", pack_folder(folder))},
            timeout=300,
        )
        if response.status_code == 409:  # edited without a version bump: keep what is published
            return f"{folder.name}: NOT published, {response.json()['detail']}"
        if response.status_code >= 400:
            raise StackError(f"publishing {folder} failed: {response.status_code} {response.text}")
        body = response.json()
        verb = "published" if response.status_code == 201 else "already published"
        return f"{body['name']}=={body['version']} {verb}"

    folders = sorted(p.parent for p in plugins_dir.glob("*/pyproject.toml"))
    with ThreadPoolExecutor(max_workers=4) as pool:  # validation runs in parallel
        return list(pool.map(publish, folders))


def start_api(config: StackConfig) -> None:
    ensure_database(config, config.database)
    start_process(
        config,
        "api",
        [config.python, "-m", "theodolite_api"],
        {
            **config.service_env(),
            "THEODOLITE_API_HOST": "127.0.0.1",
            "THEODOLITE_API_PORT": str(config.api_port),
        },
    )
    wait_until(config, "api", http_ok(f"{config.api_url}/readyz"), 60)


def worker_name(queue: str, index: int = 0) -> str:
    return f"worker-{queue}-{index}"


def start_worker(
    config: StackConfig,
    queue: str,
    index: int = 0,
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    name = worker_name(queue, index)
    start_process(
        config,
        name,
        [config.python, "-m", "theodolite_worker"],
        {
            **config.service_env(),
            "THEODOLITE_WORKER_QUEUE": queue,
            "THEODOLITE_WORKER_WORKER_ID": f"{socket.gethostname()}-{name}",
            "THEODOLITE_WORKER_WORK_DIR": str((config.state_dir / name).resolve()),
            "THEODOLITE_WORKER_API_URL": config.api_url,
            **(env or {}),
        },
    )
    if wait:
        wait_until(config, name, lambda: live_workers(config, queue) > 0, 60)
    return name


def live_workers(config: StackConfig, queue: str) -> int:
    try:
        response = httpx.get(f"{config.api_url}/api/v1/queues", timeout=2)
    except httpx.HTTPError:
        return 0
    for entry in response.json().get("data", []):
        if entry["name"] == queue:
            return int(entry["live_workers"])
    return 0


SERVICES_IN_STOP_ORDER = ("api", "registry", "prefect", "mlflow", "s3")


def up(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    say(f"S3 server (SeaweedFS) on {config.s3_endpoint} ...")
    start_object_store(config)
    say(f"MLflow server on {config.mlflow_url} ...")
    start_mlflow(config)
    say(f"Prefect server on {config.prefect_url} ...")
    start_prefect(config)
    say(f"plugin registry on {config.registry_url} ...")
    start_registry(config)
    for line in publish_builtin_plugins(config):
        say(f"  plugin {line}")
    say(f"api on {config.api_url} ...")
    start_api(config)
    for queue in config.worker_queues:
        say(f"worker for queue {queue!r} ...")
        start_worker(config, queue)


def down(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    pids = config.state_dir / "pids"
    workers = sorted(p.stem for p in pids.glob("worker-*.pid")) if pids.exists() else []
    for name in (*workers, *SERVICES_IN_STOP_ORDER):
        if stop_process(config, name):
            say(f"stopped {name}")
