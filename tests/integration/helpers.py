"""Small steps every integration test takes through the HTTP API."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


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


def create_queue(api: httpx.Client) -> str:
    name = unique("q")
    response = api.post("/queues", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def submit(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/jobs", json=body)


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
