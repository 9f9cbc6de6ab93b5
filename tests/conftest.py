"""Test configuration: fixtures are grouped by theme under tests/fixtures/."""

import pytest

pytest_plugins = ["tests.fixtures.archives", "tests.fixtures.stack"]


@pytest.fixture(autouse=True)
def _no_personal_api_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The client never picks up the developer's own key (environment or config file)."""
    monkeypatch.delenv("THEODOLITE_API_KEY", raising=False)
    monkeypatch.setenv("THEODOLITE_CONFIG", str(tmp_path_factory.mktemp("config") / "config.toml"))
