"""The third-party servers of the stack: the S3 server (SeaweedFS), MLflow and Prefect."""

from __future__ import annotations

import json
import time

from theodolite.devstack.config import TELEMETRY_OFF, StackConfig
from theodolite.devstack.database import ensure_database
from theodolite.devstack.processes import executable, start_server


def start_object_store(config: StackConfig) -> None:
    """SeaweedFS's S3 gateway with the stack's access key, and the stack's buckets."""
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
    start_server(
        config,
        "s3",
        [
            executable(config, "weed"),
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
        health_url=f"http://{config.s3_endpoint}/healthz",
        timeout_s=60,
    )
    _create_buckets(config)


def _create_buckets(config: StackConfig) -> None:
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


def _listening(config: StackConfig, program: str, *command: str, port: int) -> list[str]:
    """``<program> <command> --host 127.0.0.1 --port <port>``, as MLflow and Prefect take it."""
    return [executable(config, program), *command, "--host", "127.0.0.1", "--port", str(port)]


def start_mlflow(config: StackConfig) -> None:
    """The MLflow tracking server, its runs in PostgreSQL and its artifacts in S3."""
    ensure_database(config, config.mlflow_database)
    start_server(
        config,
        "mlflow",
        [
            *_listening(config, "mlflow", "server", port=config.mlflow_port),
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
        health_url=f"{config.mlflow_url}/health",
        timeout_s=120,
    )


def start_prefect(config: StackConfig) -> None:
    """The Prefect server that jobs run their task graphs against, on PostgreSQL."""
    ensure_database(config, config.prefect_database)
    start_server(
        config,
        "prefect",
        _listening(config, "prefect", "server", "start", port=config.prefect_port),
        {
            **TELEMETRY_OFF,
            "PREFECT_HOME": str((config.state_dir / "prefect-server").resolve()),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": config.database_url(
                "asyncpg", config.prefect_database
            ),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(config.prefect_port),
        },
        health_url=f"{config.prefect_api_url}/health",
        timeout_s=120,
    )
