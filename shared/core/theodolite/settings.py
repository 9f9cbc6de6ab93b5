"""Settings models, one per concern. Each service composes the ones it needs in its own settings.

Every variable is prefixed ``THEODOLITE_``; nothing here is instantiated at import time.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_S3_SECRET = "theodolite-dev-secret"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_DB_")

    url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/theodolite",
        description="SQLAlchemy URL of the system-of-record database (asyncpg driver).",
    )
    pool_size: int = Field(10, description="Connections kept open per process.")


class BrokerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_BROKER_")

    url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", description="AMQP URL of RabbitMQ, vhost included."
    )
    job_delivery_limit: int = Field(
        5, description="Deliveries of one job message before it goes to the dead-letter queue."
    )


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_S3_")

    endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3-compatible server.")
    access_key: str = Field("theodolite", description="S3 access key.")
    secret_key: str = Field(DEVELOPMENT_S3_SECRET, description="S3 secret key.")
    secure: bool = Field(False, description="Use HTTPS to reach the S3 server.")
    region: str | None = Field(None, description="S3 region, where the server wants one.")
    entrypoint_bucket: str = Field(
        "theodolite-entrypoints", description="Bucket of content-addressed entry point archives."
    )
    plugin_bucket: str = Field(
        "theodolite-plugins",
        description="Bucket of plugin archives: the registry's own, and any put there directly.",
    )


class MlflowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_MLFLOW_")

    tracking_uri: str = Field(
        "http://127.0.0.1:5000", description="MLflow tracking server that services and jobs use."
    )
    public_url: str | None = Field(
        None, description="MLflow UI address shown to users (defaults to the tracking URI)."
    )
    request_timeout_s: float = Field(10.0, description="Timeout of one MLflow REST call.")

    @property
    def ui_url(self) -> str:
        return (self.public_url or self.tracking_uri).rstrip("/")


class ArchiveLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_ARCHIVE_")

    max_bytes: int = Field(50 * 2**20, description="Largest archive accepted, as uploaded.")
    max_members: int = Field(2000, description="Most files and folders in one archive.")
    max_unpacked_bytes: int = Field(200 * 2**20, description="Largest total size once unpacked.")


class CommonSettings(BaseSettings):
    """What every service shares; services subclass it and add their own fields."""

    # Services subclass this with prefixes of their own: the environment keeps one variable name
    # for all of them (a plain alias), and ``validate_by_name`` still takes ``environment=`` in
    # code. (A bare ``ENVIRONMENT`` variable, which many hosts set, is not read.)
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_", validate_by_name=True)

    environment: Environment = Field(
        Environment.DEVELOPMENT,
        validation_alias="THEODOLITE_ENVIRONMENT",
        description="development allows the built-in development secrets.",
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> CommonSettings:
        if (
            self.environment is Environment.PRODUCTION
            and self.storage.secret_key == DEVELOPMENT_S3_SECRET
        ):
            raise ValueError("THEODOLITE_S3_SECRET_KEY must be set outside development")
        return self
