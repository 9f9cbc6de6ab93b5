"""A private stack (tests, benchmarks): free ports, databases and a RabbitMQ vhost of its own,
so it never sees the state of the Quickstart stack or of another run on this machine."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from theodolite.devstack.config import StackConfig, free_ports
from theodolite.devstack.database import drop_database
from theodolite.devstack.stack import down, up


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def isolated_config(state_dir: Path, extra_env: dict[str, str] | None = None) -> StackConfig:
    """A private stack: start it with ``up_isolated``, remove it with ``down_isolated``."""
    suffix = secrets.token_hex(4)
    api, internal, mlflow, prefect, registry, s3, master, volume, filer, admin = free_ports(10)
    return StackConfig(
        state_dir=state_dir,
        api_port=api,
        api_internal_port=internal,
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
    """Create the stack's vhost and start the stack, quietly."""
    _rabbitmqctl("add_vhost", _vhost(config))
    _rabbitmqctl("set_permissions", "-p", _vhost(config), "guest", ".*", ".*", ".*")
    up(config, say=lambda line: None)


def down_isolated(config: StackConfig) -> None:
    """Stop the stack and remove its databases and vhost."""
    down(config, say=lambda line: None)
    for name in (config.database, config.mlflow_database, config.prefect_database):
        drop_database(config, name)
    _rabbitmqctl("delete_vhost", _vhost(config))
