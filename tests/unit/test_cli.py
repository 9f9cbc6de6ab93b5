"""The command line against a fake api: exit codes, JSON output, problems printed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import theodolite.client
from tests.unit.test_client import JOB_ID, job_body, sse, status
from theodolite.cli import app

EXPERIMENT = {
    "id": str(uuid.uuid4()),
    "name": "default",
    "group_id": str(uuid.uuid4()),
    "mlflow_experiment_id": "1",
    "mlflow_url": "http://mlflow.test/#/experiments/1",
    "created_at": "2026-01-01T00:00:00Z",
}
ENTRYPOINT_ID = str(uuid.uuid4())
ENTRYPOINT = {
    "id": ENTRYPOINT_ID,
    "group_id": str(uuid.uuid4()),
    "sha256": "0" * 64,
    "size_bytes": 10,
    "archive_format": "tar.gz",
    "entry_points": [],
    "created_at": "2026-01-01T00:00:00Z",
}


@pytest.fixture
def fake_api(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[httpx.Request], httpx.Response]], None]:
    def install(handler: Callable[[httpx.Request], httpx.Response]) -> None:
        real = theodolite.client.TheodoliteClient

        def client(base_url: str, timeout: float = 30.0, api_key: str | None = None) -> Any:
            return real(
                base_url, timeout=timeout, api_key=api_key, transport=httpx.MockTransport(handler)
            )

        monkeypatch.setattr(theodolite.client, "TheodoliteClient", client)

    return install


def _api_for_a_job_ending(final: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/experiments":
            return httpx.Response(201, json=EXPERIMENT)
        if path == f"/entrypoints/{ENTRYPOINT_ID}":
            return httpx.Response(200, json=ENTRYPOINT)
        if path == "/jobs":
            return httpx.Response(202, json=job_body())
        if path.endswith("/events"):
            return httpx.Response(
                200,
                content=sse(
                    status("1.0", "queued"),
                    status("1.1", final),
                    ("end", None, {"job_id": JOB_ID, "status": final}),
                ),
            )
        return httpx.Response(
            200, json=job_body(final, error=None if final == "succeeded" else "x")
        )

    return handler


@pytest.mark.parametrize(
    ("final", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 3), ("timed_out", 4)]
)
def test_submit_wait_exits_with_how_the_job_ended(fake_api: Any, final: str, code: int) -> None:
    fake_api(_api_for_a_job_ending(final))
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID, "-P", "count=2", "--wait", "--json"])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["status"] == final


def test_submit_without_wait_prints_the_id(fake_api: Any) -> None:
    fake_api(_api_for_a_job_ending("succeeded"))
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID])
    assert result.exit_code == 0
    assert result.stdout.strip() == JOB_ID


def test_refusals_print_the_problem_and_exit_2(fake_api: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            409, json={"title": "Conflict", "detail": f"job {JOB_ID} has ended already (succeeded)"}
        )

    fake_api(handler)
    result = CliRunner().invoke(app, ["jobs", "cancel", JOB_ID])
    assert result.exit_code == 2
    assert "409 Conflict" in result.stderr and "ended already" in result.stderr


def test_a_bad_param_is_a_usage_error(fake_api: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing is sent for a usage error")

    fake_api(handler)
    result = CliRunner().invoke(app, ["submit", ENTRYPOINT_ID, "-P", "novalue"])
    assert result.exit_code == 2
    assert "name=value" in result.output


def test_grid_values_read_as_numbers_when_they_are() -> None:
    from theodolite.cli.sweeps import parse_grid

    assert parse_grid(["eps=0.1,0.2", "model=svc,1", "flag=true"]) == {
        "eps": [0.1, 0.2],
        "model": ["svc", 1],
        "flag": [True],
    }


def test_the_existing_commands_are_still_there() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for command in (
        "stack",
        "db",
        "demo",
        "run-graph",
        "plugins",
        "submit",
        "jobs",
        "experiments",
        "entrypoints",
        "queues",
        "sweeps",
        "webhooks",
    ):
        assert command in result.stdout
    assert "up" in CliRunner().invoke(app, ["stack", "--help"]).stdout
    assert "push" in CliRunner().invoke(app, ["plugins", "--help"]).stdout
