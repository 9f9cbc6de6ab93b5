"""The local stack without Docker: S3 server (SeaweedFS), MLflow server, api and workers as
background processes on 127.0.0.1, beside the machine's own PostgreSQL and RabbitMQ.

Used by ``theodolite stack up/down`` (the Quickstart) and by the integration tests, which start
their own copy on free ports with their own databases and RabbitMQ vhost.

    config.py     StackConfig: ports, databases, buckets, the services' environment
    processes.py  start, stop and wait for one process (pid files, logs, health checks)
    database.py   the stack's databases on the machine's PostgreSQL
    servers.py    the third-party servers: S3 (SeaweedFS), MLflow, Prefect
    services.py   the testbed's own: plugin registry (and the built-in plugins), api, workers
    stack.py      the whole stack up and down
    isolated.py   a private stack for tests and benchmarks

Re-exported here: what the command line, the tests and the benchmarks import.
"""

from theodolite.devstack.config import StackConfig, free_ports
from theodolite.devstack.database import _drop_database, _ensure_database, drop_database
from theodolite.devstack.isolated import _rabbitmqctl, down_isolated, isolated_config, up_isolated
from theodolite.devstack.processes import (
    StackError,
    http_ok,
    running_pid,
    start_process,
    stop_process,
    wait_until,
)
from theodolite.devstack.servers import start_object_store, start_prefect
from theodolite.devstack.services import (
    api_env,
    start_api,
    start_worker,
    worker_env,
    worker_name,
)
from theodolite.devstack.stack import down, up

__all__ = [
    "StackConfig",
    "StackError",
    "_drop_database",
    "_ensure_database",
    "_rabbitmqctl",
    "api_env",
    "down",
    "down_isolated",
    "drop_database",
    "free_ports",
    "http_ok",
    "isolated_config",
    "running_pid",
    "start_api",
    "start_object_store",
    "start_prefect",
    "start_process",
    "start_worker",
    "stop_process",
    "up",
    "up_isolated",
    "wait_until",
    "worker_env",
    "worker_name",
]
