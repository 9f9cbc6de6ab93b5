"""``--env-manager`` on ``theodolite submit`` and ``run``, as ``mlflow run`` takes it, against a
fake api."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.unit.test_cli import ENTRYPOINT_ID, fake_api
from tests.unit.test_cli_run import Recorder
from theodolite.cli import app

__all__ = ["fake_api"]


def test_submit_sends_the_env_manager_and_leaves_it_out_when_unset(fake_api: Any) -> None:
    api = Recorder()
    fake_api(api)
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID, "--env-manager", "local"])
    assert result.exit_code == 0, result.output
    assert api.sent["job"]["env_manager"] == "local"
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID])
    assert result.exit_code == 0, result.output
    assert "env_manager" not in api.sent["job"]


def test_run_passes_the_env_manager_on(fake_api: Any, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    api = Recorder()
    fake_api(api)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path), "-e", "train.py", "--env-manager", "uv"]
    )
    assert result.exit_code == 0, result.output
    assert api.sent["job"]["env_manager"] == "uv"
