"""CommonSettings.environment: one variable for every service, whatever the service's prefix."""

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from theodolite.settings import CommonSettings, Environment


class ServiceSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_SERVICE_")


def set_production_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values production accepts for every secret that has a development default."""
    monkeypatch.setenv("THEODOLITE_S3_SECRET_KEY", "a-real-secret")
    monkeypatch.setenv("THEODOLITE_BROKER_URL", "amqp://service:a-real-password@rabbitmq:5672/")


def test_the_environment_is_read_from_theodolite_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    set_production_secrets(monkeypatch)
    assert ServiceSettings().environment is Environment.PRODUCTION


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEODOLITE_ENVIRONMENT", "production")
    monkeypatch.delenv("THEODOLITE_S3_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="THEODOLITE_S3_SECRET_KEY"):
        ServiceSettings()


def test_code_sets_the_environment_by_its_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THEODOLITE_ENVIRONMENT", raising=False)
    set_production_secrets(monkeypatch)
    assert ServiceSettings(environment=Environment.PRODUCTION).environment is Environment.PRODUCTION


def test_a_bare_environment_variable_is_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many hosts set ENVIRONMENT (to "staging", "prod", ...): it must not decide this one.
    monkeypatch.delenv("THEODOLITE_ENVIRONMENT", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "staging")
    assert ServiceSettings().environment is Environment.DEVELOPMENT
