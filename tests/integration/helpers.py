"""Small steps every integration test takes through the HTTP API."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "skipped"}


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def create_experiment(api: httpx.Client, name: str | None = None) -> dict[str, Any]:
    response = api.post("/experiments", json={"name": name or unique("exp")})
    assert response.status_code == 201, response.text
    return response.json()


def upload(api: httpx.Client, data: bytes, filename: str = "project.tar.gz") -> httpx.Response:
    return api.post("/entrypoints", files={"archive": (filename, data)})


def upload_ok(api: httpx.Client, data: bytes) -> dict[str, Any]:
    response = upload(api, data)
    assert response.status_code in (200, 201), response.text
    return response.json()


def job_target(api: httpx.Client, archive: bytes) -> dict[str, str]:
    """A new experiment and ``archive`` uploaded: the two ids a job submission names."""
    experiment = create_experiment(api)
    entrypoint = upload_ok(api, archive)
    return {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}


def create_queue(api: httpx.Client) -> str:
    name = unique("q")
    response = api.post("/queues", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def submit(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/jobs", json=body)


def run_job(
    api: httpx.Client, target: dict[str, str], params: dict[str, Any], timeout_s: float = 180
) -> dict[str, Any]:
    """Submit a job of ``target`` (see ``job_target``) with ``params``; the job once it ended."""
    response = submit(api, **target, params=params)
    assert response.status_code == 202, response.text
    return wait_for_end(api, response.json()["id"], timeout_s=timeout_s)


def metrics_of(api: httpx.Client, job_id: str) -> dict[str, float]:
    """The latest value of each metric the job logged."""
    return {
        m["key"]: m["latest"]["value"] for m in api.get(f"/jobs/{job_id}/metrics").json()["data"]
    }


def wait_for_end(api: httpx.Client, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = api.get(f"/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.3)


def wait_until(predicate: Any, timeout_s: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
