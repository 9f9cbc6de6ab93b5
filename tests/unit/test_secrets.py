"""Secrets in deployments: every secret setting read from ``<VARIABLE>_FILE``, and production
refusing every development default by the variable to set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretBytes, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsError
from theodolite_registry.settings import RegistrySettings

from theodolite.settings import CommonSettings, Environment, secret_variables
from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

SERVICE_SETTINGS: list[type[CommonSettings]] = [ApiSettings, RegistrySettings, WorkerSettings]
SECRETS = [
    (settings_class, variable, path)
    for settings_class in SERVICE_SETTINGS
    for variable, path in sorted(secret_variables(settings_class).items())
]
# What production accepts for each secret that has a development default.
PRODUCTION_VALUES = {
    "THEODOLITE_S3_SECRET_KEY": "a-real-s3-secret",
    "THEODOLITE_BROKER_URL": "amqp://theodolite:a-real-password@rabbitmq:5672/",
    "THEODOLITE_DB_URL": "postgresql+asyncpg://api:a-real-password@postgres:5432/theodolite",
    "THEODOLITE_API_WORKER_SECRET": "a-real-worker-secret",
}


@pytest.fixture(autouse=True)
def _no_theodolite_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("THEODOLITE_"):
            monkeypatch.delenv(key)


def attribute(settings: BaseSettings, path: tuple[str, ...]) -> object:
    value: object = settings
    for name in path:
        value = getattr(value, name)
    if isinstance(value, SecretStr | SecretBytes):
        return value.get_secret_value()
    return value


def test_every_service_has_the_shared_secrets() -> None:
    for settings_class in SERVICE_SETTINGS:
        assert {
            "THEODOLITE_BROKER_URL",
            "THEODOLITE_S3_ACCESS_KEY",
            "THEODOLITE_S3_SECRET_KEY",
        } <= set(secret_variables(settings_class)), settings_class.__name__
    for settings_class in (ApiSettings, RegistrySettings):
        assert "THEODOLITE_DB_URL" in secret_variables(settings_class)
    # The worker needs no database at all.
    assert "THEODOLITE_DB_URL" not in secret_variables(WorkerSettings)


@pytest.mark.parametrize(
    ("settings_class", "variable", "path"),
    SECRETS,
    ids=[f"{cls.__name__}-{variable}" for cls, variable, _ in SECRETS],
)
def test_every_secret_is_read_from_its_file(
    settings_class: type[BaseSettings],
    variable: str,
    path: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = PRODUCTION_VALUES.get(variable, "from-a-file")
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")  # as `echo` and most editors write it
    monkeypatch.setenv(f"{variable}_FILE", str(secret_file))
    assert attribute(settings_class(), path) == secret


def test_a_missing_secret_file_fails_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "s3_secret_key"
    monkeypatch.setenv("THEODOLITE_S3_SECRET_KEY_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"THEODOLITE_S3_SECRET_KEY_FILE={missing}"):
        ApiSettings()


def test_an_unreadable_secret_file_fails_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder cannot be read as a file, whoever runs the test (root reads every mode).
    monkeypatch.setenv("THEODOLITE_BROKER_URL_FILE", str(tmp_path))
    with pytest.raises(SettingsError, match="THEODOLITE_BROKER_URL_FILE"):
        WorkerSettings()


def test_a_secret_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "db_url"
    secret_file.write_text(PRODUCTION_VALUES["THEODOLITE_DB_URL"])
    monkeypatch.setenv("THEODOLITE_DB_URL_FILE", str(secret_file))
    monkeypatch.setenv("THEODOLITE_DB_URL", PRODUCTION_VALUES["THEODOLITE_DB_URL"])
    with pytest.raises(SettingsError, match="THEODOLITE_DB_URL or THEODOLITE_DB_URL_FILE"):
        RegistrySettings()


def test_a_file_only_counts_for_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint_file = tmp_path / "endpoint"
    endpoint_file.write_text("elsewhere:9000")
    monkeypatch.setenv("THEODOLITE_S3_ENDPOINT_FILE", str(endpoint_file))
    assert WorkerSettings().storage.endpoint == "127.0.0.1:9000"


def _production_variables(settings_class: type[BaseSettings]) -> dict[str, str]:
    known = secret_variables(settings_class)
    return {key: value for key, value in PRODUCTION_VALUES.items() if key in known}


@pytest.mark.parametrize("settings_class", SERVICE_SETTINGS, ids=lambda cls: cls.__name__)
def test_production_starts_with_every_secret_from_files(
    settings_class: type[CommonSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    for variable, value in _production_variables(settings_class).items():
        (tmp_path / variable).write_text(value + "\n")
        monkeypatch.setenv(f"{variable}_FILE", str(tmp_path / variable))
    settings = settings_class()
    assert settings.environment is Environment.PRODUCTION


DEFAULTS_REFUSED = [
    (settings_class, variable)
    for settings_class in SERVICE_SETTINGS
    for variable in _production_variables(settings_class)
]


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    DEFAULTS_REFUSED,
    ids=[f"{cls.__name__}-{variable}" for cls, variable in DEFAULTS_REFUSED],
)
def test_production_refuses_each_development_default_by_its_variable(
    settings_class: type[BaseSettings], variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    for other, value in _production_variables(settings_class).items():
        if other != variable:
            monkeypatch.setenv(other, value)
    with pytest.raises(ValidationError, match=f"{variable} \\(or {variable}_FILE\\)") as refused:
        settings_class()
    # Only the one left at its default is named.
    for other in _production_variables(settings_class):
        if other != variable:
            assert other not in str(refused.value)
    # The same settings are fine in development.
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "development")
    settings_class()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THEODOLITE_BROKER_URL", "amqp://guest:guest@rabbitmq:5672/"),
        ("THEODOLITE_BROKER_URL", "amqp://rabbitmq:5672/"),  # the client then uses guest:guest
        ("THEODOLITE_DB_URL", "postgresql+asyncpg://api@postgres:5432/theodolite"),
        ("THEODOLITE_DB_URL", "postgresql+asyncpg://postgres:secret@postgres:5432/theodolite"),
        ("THEODOLITE_DB_URL", "postgresql+asyncpg:///theodolite"),  # peer/trust auth
    ],
)
def test_production_refuses_development_credentials_set_explicitly(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    for other, good in PRODUCTION_VALUES.items():
        monkeypatch.setenv(other, good)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        ApiSettings()


def test_production_names_every_default_left_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    with pytest.raises(ValidationError) as refused:
        ApiSettings()
    for variable in PRODUCTION_VALUES:
        assert variable in str(refused.value)
