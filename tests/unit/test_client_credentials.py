"""Where the client and the command line find their API key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from theodolite.cli import app
from theodolite.client import TheodoliteClient
from theodolite.client.credentials import InsecureConfig, find_key, save_key

API = "http://api.test"


def test_the_argument_then_the_environment_then_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("THEODOLITE_CONFIG", str(config))
    assert find_key(API) is None
    save_key(API, "thd_from_file")
    save_key("http://other:8000/", "thd_other")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert find_key(API + "/") == "thd_from_file" and find_key("http://other:8000") == "thd_other"
    monkeypatch.setenv("THEODOLITE_API_KEY", "thd_from_env")
    assert find_key(API) == "thd_from_env"
    assert find_key(API, "thd_given") == "thd_given"


def test_a_config_file_others_may_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("THEODOLITE_CONFIG", str(config))
    save_key(API, "thd_x")
    os.chmod(config, 0o644)
    with pytest.raises(InsecureConfig, match="chmod 600"):
        find_key(API)


def _recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "count": 0})

    return seen, httpx.MockTransport(handler)


def test_the_client_sends_its_key_as_a_bearer_token() -> None:
    seen, transport = _recording()
    with TheodoliteClient(API, api_key="thd_abc", transport=transport) as client:
        client.list_experiments()
    assert seen[0].headers["Authorization"] == "Bearer thd_abc"


def test_the_command_line_takes_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, transport = _recording()
    original = TheodoliteClient.__init__

    def with_transport(self: TheodoliteClient, *args: object, **kwargs: object) -> None:
        original(self, *args, **{**kwargs, "transport": transport})  # type: ignore[arg-type]

    monkeypatch.setattr(TheodoliteClient, "__init__", with_transport)
    result = CliRunner().invoke(
        app, ["--api-key", "thd_cli", "experiments", "list", "--json", "--api-url", API]
    )
    assert result.exit_code == 0, result.output
    assert seen[0].headers["Authorization"] == "Bearer thd_cli"
    result = CliRunner().invoke(
        app, ["experiments", "list", "--json", "--api-url", API], env={"THEODOLITE_API_KEY": "e"}
    )
    assert result.exit_code == 0 and seen[1].headers["Authorization"] == "Bearer e"
