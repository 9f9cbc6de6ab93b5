"""``theodolite run`` and the options shared with ``mlflow run`` (-e entry point, -P,
--experiment-name / --experiment-id), against a fake api (httpx.MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.unit.test_cli import ENTRYPOINT, ENTRYPOINT_ID, EXPERIMENT, fake_api
from tests.unit.test_client import JOB_ID, job_body, sse, status
from theodolite.cli import app

__all__ = ["fake_api"]


class Recorder:
    """A fake api whose job ends ``final``; it keeps what the command line sent."""

    def __init__(self, final: str = "succeeded") -> None:
        self.final = final
        self.sent: dict[str, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if request.method == "POST" and path == "/experiments":
            self.sent["experiment"] = json.loads(request.content)
            return httpx.Response(201, json=EXPERIMENT)
        if path == f"/experiments/{EXPERIMENT['id']}":
            self.sent["experiment_id"] = EXPERIMENT["id"]
            return httpx.Response(200, json=EXPERIMENT)
        if request.method == "POST" and path == "/entrypoints":
            self.sent["upload"] = True
            return httpx.Response(201, json=ENTRYPOINT)
        if path == f"/entrypoints/{ENTRYPOINT_ID}":
            return httpx.Response(200, json=ENTRYPOINT)
        if request.method == "POST" and path == "/jobs":
            self.sent["job"] = json.loads(request.content)
            return httpx.Response(202, json=job_body())
        if path.endswith("/events"):
            return httpx.Response(
                200,
                content=sse(
                    status("1.0", "queued"),
                    status("1.1", self.final),
                    ("end", None, {"job_id": JOB_ID, "status": self.final}),
                ),
            )
        error = None if self.final == "succeeded" else "x"
        return httpx.Response(200, json=job_body(self.final, error=error))


@pytest.mark.parametrize(("final", "code"), [("succeeded", 0), ("failed", 1)])
def test_run_uploads_submits_follows_and_exits_as_the_job_ended(
    fake_api: Any, tmp_path: Path, final: str, code: int
) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    api = Recorder(final)
    fake_api(api)
    result = CliRunner().invoke(
        app,
        ["run", str(tmp_path), "-e", "train.py", "-P", "alpha=0.5", "--experiment-name", "exp"],
    )
    assert result.exit_code == code, result.output
    assert api.sent["upload"]
    assert api.sent["experiment"]["name"] == "exp"
    assert api.sent["job"]["entry_point"] == "train.py"
    assert api.sent["job"]["params"] == {"alpha": "0.5"}  # text, as mlflow run -P sends


def test_submit_reads_e_as_the_entry_point_and_defaults_to_main(fake_api: Any) -> None:
    api = Recorder()
    fake_api(api)
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID, "-e", "train"])
    assert result.exit_code == 0, result.output
    assert api.sent["job"]["entry_point"] == "train"
    assert api.sent["experiment"]["name"] == "default"
    CliRunner().invoke(app, ["submit", ENTRYPOINT_ID])
    assert api.sent["job"]["entry_point"] == "main"


def test_experiment_by_id_or_by_the_older_long_name(fake_api: Any) -> None:
    api = Recorder()
    fake_api(api)
    by_id = CliRunner().invoke(app, ["run", ENTRYPOINT_ID, "--experiment-id", EXPERIMENT["id"]])
    assert by_id.exit_code == 0, by_id.output
    assert api.sent["experiment_id"] == EXPERIMENT["id"]
    assert api.sent["job"]["experiment_id"] == EXPERIMENT["id"]
    older = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID, "--experiment", "legacy"])
    assert older.exit_code == 0, older.output
    assert api.sent["experiment"]["name"] == "legacy"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--experiment-id", "not-an-id"],
        ["--experiment-id", EXPERIMENT["id"], "--experiment-name", "x"],
    ],
)
def test_experiment_options_refused_before_anything_is_sent(
    fake_api: Any, arguments: list[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing is sent for a usage error")

    fake_api(handler)
    result = CliRunner().invoke(app, ["run", ENTRYPOINT_ID, *arguments])
    assert result.exit_code == 2
    assert "--experiment-id" in result.output


def test_an_upload_shows_warnings_and_the_files_runnable_with_e(
    fake_api: Any, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    described = {
        **ENTRYPOINT,
        "entry_points": [
            {
                "name": "main",
                "command": "python train.py {flag}",
                "parameters": [
                    {"name": "flag", "type": "bool", "default": "False", "required": False}
                ],
                "warnings": ["parameter flag: type 'bool' is not one of (...); read as string"],
            }
        ],
        "runnable_files": ["train.py"],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json=described)

    fake_api(handler)
    result = CliRunner().invoke(app, ["entrypoints", "push", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "main(flag: bool = False)" in result.stdout
    assert "main: parameter flag: type 'bool'" in result.stderr
    assert "files runnable with -e: train.py" in result.stdout
