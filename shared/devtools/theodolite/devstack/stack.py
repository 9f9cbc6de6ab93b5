"""The whole stack up and down, in order: storage and tracking first, the testbed after."""

from __future__ import annotations

from collections.abc import Callable

from theodolite.devstack.config import StackConfig
from theodolite.devstack.processes import stop_process
from theodolite.devstack.servers import start_mlflow, start_object_store, start_prefect
from theodolite.devstack.services import (
    bootstrap_admin,
    publish_builtin_plugins,
    start_api,
    start_registry,
    start_worker,
)

SERVICES_IN_STOP_ORDER = ("api", "registry", "prefect", "mlflow", "s3")


def up(
    config: StackConfig,
    *,
    say: Callable[[str], None] = print,
    on_admin_key: Callable[[str], None] = lambda key: None,
) -> None:
    """Start every server and service of the stack, and a worker per queue. The first time, an
    administrator is made and ``on_admin_key`` is given their key."""
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
    if (key := bootstrap_admin(config)) is not None:
        on_admin_key(key)
    for queue in config.worker_queues:
        say(f"worker for queue {queue!r} ...")
        start_worker(config, queue)


def down(config: StackConfig, *, say: Callable[[str], None] = print) -> None:
    """Stop the workers, then the services and servers (their data stays)."""
    pids = config.state_dir / "pids"
    workers = sorted(p.stem for p in pids.glob("worker-*.pid")) if pids.exists() else []
    for name in (*workers, *SERVICES_IN_STOP_ORDER):
        if stop_process(config, name):
            say(f"stopped {name}")
