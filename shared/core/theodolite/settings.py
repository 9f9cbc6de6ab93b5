"""Settings models, one per concern. Each service composes the ones it needs in its own settings.

Every variable is prefixed ``THEODOLITE_``; nothing here is instantiated at import time. Every
secret field can also be read from a file: ``<VARIABLE>_FILE`` names it (Docker and Kubernetes
secrets, e.g. ``THEODOLITE_S3_SECRET_KEY_FILE=/run/secrets/s3_secret_key``).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretBytes, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from theodolite.observability.logs import LogSettings
from theodolite.observability.tracing import TracingSettings

DEVELOPMENT_S3_SECRET = "theodolite-dev-secret"
DEVELOPMENT_DB_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/theodolite"
DEVELOPMENT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Superuser names a production service must not connect as (each has a role of its own).
_SUPERUSERS = frozenset({"postgres"})


def SecretField(default: Any, *, description: str) -> Any:  # noqa: N802  (reads like Field)
    """A field holding a secret: it may come from ``<VARIABLE>_FILE`` too."""
    return Field(default, description=description, json_schema_extra={"secret": True})


def is_secret(field: FieldInfo) -> bool:
    """A field made with SecretField, or typed SecretStr/SecretBytes (optional or not)."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and extra.get("secret") is True:
        return True
    types = {field.annotation, *get_args(field.annotation)}
    return bool(types & {SecretStr, SecretBytes})


def variable_names(settings_cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set one field of a settings class."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    return [f"{settings_cls.model_config.get('env_prefix', '')}{name}".upper()]


def secret_variables(settings_cls: type[BaseSettings]) -> dict[str, tuple[str, ...]]:
    """Every secret's variable a settings class reads (nested concerns too) -> attribute path."""
    found: dict[str, tuple[str, ...]] = {}
    for name, field in settings_cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            for variable, path in secret_variables(annotation).items():
                found[variable] = (name, *path)
        elif is_secret(field):
            for variable in variable_names(settings_cls, name, field):
                found[variable] = (name,)
    return found


def _read_secret_file(variable: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SettingsError(
            f"{variable}_FILE={path}: the secret file cannot be read ({reason})"
        ) from error
    return text.rstrip("\r\n")


class SecretFileSource(PydanticBaseSettingsSource):
    """``<VARIABLE>_FILE`` names a file whose content (less its trailing newline) is the value."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every secret field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        case_sensitive = self.config.get("case_sensitive", False)
        environ = {
            (key if case_sensitive else key.upper()): value for key, value in os.environ.items()
        }
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if not is_secret(field):
                continue
            for variable in variable_names(self.settings_cls, name, field):
                path = environ.get(f"{variable}_FILE")
                if path is None:
                    continue
                if variable in environ:
                    raise SettingsError(f"set {variable} or {variable}_FILE, not both")
                values[name] = _read_secret_file(variable, path)
                break
        return values


class TheodoliteSettings(BaseSettings):
    """Base of every settings class: secrets from ``*_FILE`` and development-default checks."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    def development_defaults(self) -> list[str]:
        """Why this concern is not fit for production: one line per variable still to set."""
        return []


def _with_file(variable: str) -> str:
    return f"{variable} (or {variable}_FILE)"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DatabaseSettings(TheodoliteSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_DB_")

    url: str = SecretField(
        DEVELOPMENT_DB_URL,
        description="SQLAlchemy URL of the system-of-record database (asyncpg driver); it "
        "carries the password.",
    )
    pool_size: int = Field(10, description="Connections kept open per process.")

    def development_defaults(self) -> list[str]:
        url = urlsplit(self.url)
        if url.username in _SUPERUSERS or not url.password:
            return [
                f"{_with_file('THEODOLITE_DB_URL')}: a service's own role with a password, "
                f"not a passwordless or superuser one ({url.username or 'no user'})"
            ]
        return []


class BrokerSettings(TheodoliteSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_BROKER_")

    url: str = SecretField(
        DEVELOPMENT_BROKER_URL,
        description="AMQP URL of RabbitMQ, vhost included; it carries the password.",
    )
    job_delivery_limit: int = Field(
        5, description="Deliveries of one job message before it goes to the dead-letter queue."
    )

    def development_defaults(self) -> list[str]:
        url = urlsplit(self.url)
        # No credentials in the URL means guest:guest to the AMQP client.
        if not url.password or (url.username, url.password) == ("guest", "guest"):
            return [f"{_with_file('THEODOLITE_BROKER_URL')}: a broker user other than guest:guest"]
        return []


class StorageSettings(TheodoliteSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_S3_")

    endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3-compatible server.")
    access_key: str = SecretField("theodolite", description="S3 access key.")
    secret_key: str = SecretField(DEVELOPMENT_S3_SECRET, description="S3 secret key.")
    secure: bool = Field(False, description="Use HTTPS to reach the S3 server.")
    region: str | None = Field(None, description="S3 region, where the server wants one.")
    entrypoint_bucket: str = Field(
        "theodolite-entrypoints", description="Bucket of content-addressed entry point archives."
    )
    plugin_bucket: str = Field(
        "theodolite-plugins",
        description="Bucket of plugin archives: the registry's own, and any put there directly.",
    )

    def development_defaults(self) -> list[str]:
        if self.secret_key == DEVELOPMENT_S3_SECRET:
            return [f"{_with_file('THEODOLITE_S3_SECRET_KEY')}: not the development secret"]
        return []


class MlflowSettings(TheodoliteSettings):
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


class ArchiveLimitSettings(TheodoliteSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_ARCHIVE_")

    max_bytes: int = Field(50 * 2**20, description="Largest archive accepted, as uploaded.")
    max_members: int = Field(2000, description="Most files and folders in one archive.")
    max_unpacked_bytes: int = Field(200 * 2**20, description="Largest total size once unpacked.")


def development_defaults(settings: BaseSettings) -> list[str]:
    """Every development default left in ``settings`` and the concerns nested in it."""
    found = settings.development_defaults() if isinstance(settings, TheodoliteSettings) else []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseSettings):
            found += development_defaults(value)
    return found


class CommonSettings(TheodoliteSettings):
    """What every service shares; services subclass it and add their own fields."""

    # Services subclass this with prefixes of their own: the environment keeps one variable name
    # for all of them (a plain alias), and ``validate_by_name`` still takes ``environment=`` in
    # code. (A bare ``ENVIRONMENT`` variable, which many hosts set, is not read.)
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_", validate_by_name=True)

    environment: Environment = Field(
        Environment.DEVELOPMENT,
        validation_alias="THEODOLITE_ENVIRONMENT",
        description="development allows the built-in development secrets; production refuses "
        "every one of them.",
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> CommonSettings:
        if self.environment is Environment.PRODUCTION and (found := development_defaults(self)):
            raise ValueError(
                "THEODOLITE_ENVIRONMENT=production refuses the development defaults; set "
                + "; ".join(found)
            )
        return self
