"""The testbed's own services in the stack: the plugin registry (with the built-in plugins
published to it), the api and the workers."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx

from theodolite.devstack.config import StackConfig
from theodolite.devstack.database import ensure_database
from theodolite.devstack.processes import StackError, start_process, start_server, wait_until


def _start_service(config: StackConfig, name: str, env: dict[str, str], url: str) -> None:
    """One of the testbed's web services (``theodolite_<name>``) on its database and port."""
    ensure_database(config, config.database)
    start_server(
        config,
        name,
        [config.python, "-m", f"theodolite_{name}"],
        env,
        health_url=f"{url}/readyz",
        timeout_s=60,
    )


def start_registry(config: StackConfig) -> None:
    """The plugin registry."""
    env = {
        **config.service_env(),
        "THEODOLITE_REGISTRY_HOST": "127.0.0.1",
        "THEODOLITE_REGISTRY_PORT": str(config.registry_port),
    }
    _start_service(config, "registry", env, config.registry_url)


def api_env(
    config: StackConfig, port: int | None = None, internal_port: int | None = None
) -> dict[str, str]:
    """An api process's environment: the stack's api ports unless told others (a replica)."""
    return {
        **config.service_env(),
        "THEODOLITE_API_HOST": "127.0.0.1",
        "THEODOLITE_API_PORT": str(config.api_port if port is None else port),
        "THEODOLITE_API_INTERNAL_HOST": "127.0.0.1",
        "THEODOLITE_API_INTERNAL_PORT": str(
            config.api_internal_port if internal_port is None else internal_port
        ),
        "THEODOLITE_API_WORKER_SECRET": config.worker_secret(),
    }


def start_api(config: StackConfig) -> None:
    """The api."""
    _start_service(config, "api", api_env(config), config.api_url)


def bootstrap_admin(config: StackConfig) -> str | None:
    """The first administrator's key (in ``config.admin_key_file``, mode 0600), when this call
    made it; None when the stack had an administrator already."""
    made_before = config.admin_key_file.exists()
    result = subprocess.run(
        [config.python, "-m", "theodolite_api.bootstrap", "--key-file", str(config.admin_key_file)],
        env={**os.environ, **config.service_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise StackError(f"bootstrapping the administrator failed: {result.stderr[-2000:]}")
    if made_before or not config.admin_key_file.exists():
        return None
    return config.admin_key()


def publish_builtin_plugins(config: StackConfig, plugins_dir: Path = Path("plugins")) -> list[str]:
    """Publish every plugin folder (idempotent: the same files give the same bytes). A direct
    call to the registry, with no group header: the built-ins belong to the system group."""
    from concurrent.futures import ThreadPoolExecutor

    from theodolite.client import pack_folder

    def publish(folder: Path) -> str:
        response = httpx.post(
            f"{config.registry_url}/api/v1/plugins",
            files={"archive": (f"{folder.name}.tar.gz", pack_folder(folder))},
            timeout=300,
        )
        # 409: edited without a version bump; 403: another group took the name. Keep what is.
        if response.status_code in (403, 409):
            return f"{folder.name}: NOT published, {response.json()['detail']}"
        if response.status_code >= 400:
            raise StackError(f"publishing {folder} failed: {response.status_code} {response.text}")
        body = response.json()
        verb = "published" if response.status_code == 201 else "already published"
        return f"{body['name']}=={body['version']} {verb}"

    folders = sorted(p.parent for p in plugins_dir.glob("*/pyproject.toml"))
    with ThreadPoolExecutor(max_workers=4) as pool:  # validation runs in parallel
        return list(pool.map(publish, folders))


def worker_name(queue: str, index: int = 0) -> str:
    return f"worker-{queue}-{index}"


def worker_env(config: StackConfig, queue: str, name: str) -> dict[str, str]:
    """A worker process's environment: its queue, id, folder, the api's internal listener and
    its own token there."""
    worker_id = f"{socket.gethostname()}-{name}"
    return {
        **config.service_env(),
        "THEODOLITE_WORKER_QUEUE": queue,
        "THEODOLITE_WORKER_WORKER_ID": worker_id,
        "THEODOLITE_WORKER_WORK_DIR": str((config.state_dir / name).resolve()),
        "THEODOLITE_WORKER_API_URL": config.api_internal_url,
        "THEODOLITE_WORKER_TOKEN": config.worker_token(worker_id),
    }


def start_worker(
    config: StackConfig,
    queue: str,
    index: int = 0,
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """A worker for ``queue``; with ``wait``, once the api counts it live."""
    name = worker_name(queue, index)
    start_process(
        config,
        name,
        [config.python, "-m", "theodolite_worker"],
        {**worker_env(config, queue, name), **(env or {})},
    )
    if wait:
        wait_until(config, name, lambda: live_workers(config, queue) > 0, 60)
    return name


def live_workers(config: StackConfig, queue: str) -> int:
    try:
        response = httpx.get(
            f"{config.api_url}/api/v1/queues", headers=config.auth_headers(), timeout=2
        )
    except httpx.HTTPError:
        return 0
    for entry in response.json().get("data", []):
        if entry["name"] == queue:
            return int(entry["live_workers"])
    return 0
