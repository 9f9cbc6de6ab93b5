"""The Python clients against a fake api (httpx.MockTransport): models, errors, event streams
that reconnect with Last-Event-ID."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from theodolite.client import (
    ApiError,
    AsyncTheodoliteClient,
    Job,
    JobEvent,
    TheodoliteClient,
    pack_folder,
)
from theodolite.client.sse import SseDecoder

JOB_ID = str(uuid.uuid4())
NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat()


def job_body(status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "experiment_id": str(uuid.uuid4()),
        "entrypoint_id": str(uuid.uuid4()),
        "entry_point": "main",
        "params": {"count": "2"},
        "queue": "cpu",
        "status": status,
        "history": [{"status": "queued", "at": NOW, "detail": None}],
        "created_at": NOW,
        "updated_at": NOW,
        "a_field_from_a_newer_api": 1,
        **extra,
    }


def sse(*events: tuple[str, str | None, dict[str, Any]]) -> bytes:
    out = [": ping\n\n"]
    for kind, event_id, data in events:
        out.append(
            f"event: {kind}\n"
            + (f"id: {event_id}\n" if event_id else "")
            + f"data: {json.dumps(data)}\n\n"
        )
    return "".join(out).encode()


def status(event_id: str, value: str) -> tuple[str, str, dict[str, Any]]:
    return (
        "status",
        event_id,
        {"job_id": JOB_ID, "attempt": 1, "seq": 0, "status": value, "at": NOW},
    )


def fake(handler: Callable[[httpx.Request], httpx.Response]) -> TheodoliteClient:
    return TheodoliteClient("http://api.test", transport=httpx.MockTransport(handler))


def test_models_are_typed_and_read_like_the_json() -> None:
    client = fake(lambda request: httpx.Response(200, json=job_body()))
    job = client.get_job(JOB_ID)
    assert isinstance(job, Job) and str(job.id) == JOB_ID
    assert job.history[0].at.year == 2026
    assert job["history"][0]["at"].startswith("2026-01-01")  # older scripts index the JSON
    assert job["id"] == JOB_ID and job.get("nope", 3) == 3
    assert job.model_extra == {"a_field_from_a_newer_api": 1}


def test_errors_carry_the_problem_list() -> None:
    problem = {
        "title": "Invalid submission",
        "status": 422,
        "detail": "2 problem(s)",
        "problems": [
            {"field": "params.count", "message": "'x' is not an int"},
            {"field": "queue", "message": "no such queue"},
        ],
    }
    client = fake(lambda request: httpx.Response(422, json=problem))
    with pytest.raises(ApiError) as raised:
        client.submit_job(uuid.uuid4(), uuid.uuid4(), params={"count": "x"}, queue="nope")
    assert raised.value.status == 422
    assert [p["field"] for p in raised.value.problems] == ["params.count", "queue"]
    assert "params.count: 'x' is not an int" in str(raised.value)
    text = fake(lambda request: httpx.Response(502, text="bad gateway"))
    with pytest.raises(ApiError, match="bad gateway"):
        text.queues()


def test_requests_carry_what_the_api_expects(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=job_body())

    client = fake(handler)
    client.submit_job(
        "e", "p", params={"n": 1}, callback_url="http://hook.test/x", idempotency_key="k1"
    )
    request = seen[-1]
    assert request.url.path == "/api/v1/jobs"
    assert request.headers["Idempotency-Key"] == "k1"
    assert json.loads(request.content) == {
        "experiment_id": "e",
        "entrypoint_id": "p",
        "entry_point": "main",
        "params": {"n": 1},
        "queue": "cpu",
        "callback_url": "http://hook.test/x",
    }
    (tmp_path / "MLproject").write_text("name: x\n")
    assert pack_folder(tmp_path) == pack_folder(tmp_path)  # reproducible bytes


def test_sse_decoder_follows_the_spec() -> None:
    decoder = SseDecoder()
    lines = [": comment", "event: log", "id: 1.2", 'data: {"a":', "data: 1}", "retry: 1500", ""]
    events = [decoder.feed(line) for line in lines]
    (event,) = [e for e in events if e is not None]
    assert (event.event, event.id, event.data) == ("log", "1.2", '{"a":\n1}')
    assert decoder.retry_ms == 1500
    assert decoder.feed("") is None


def test_a_dropped_stream_resumes_after_the_last_id() -> None:
    requests: list[httpx.Request] = []
    answers: list[bytes | Exception] = [
        sse(status("1.0", "queued"), status("1.0.1", "running")),  # the connection drops
        httpx.ConnectError("refused"),  # the api restarts
        sse(status("1.5", "succeeded"), ("end", None, {"job_id": JOB_ID, "status": "succeeded"})),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=answer)

    client = fake(handler)
    client_events = list(client.job_events(JOB_ID))
    assert [(e.event, e.status) for e in client_events] == [
        ("status", "queued"),
        ("status", "running"),
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]
    assert "Last-Event-ID" not in requests[0].headers
    assert requests[1].headers["Last-Event-ID"] == "1.0.1"
    assert requests[2].headers["Last-Event-ID"] == "1.0.1"


def test_wait_follows_events_and_returns_the_ended_job() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            progress = {"job_id": JOB_ID, "attempt": 1, "seq": 2, "fraction": 0.5, "at": NOW}
            body = sse(
                status("1.0", "queued"),
                ("progress", "1.2", progress),
                ("log", "1.3", {"job_id": JOB_ID, "attempt": 1, "seq": 3, "lines": ["hi"]}),
                status("1.4", "failed"),
                ("end", None, {"job_id": JOB_ID, "status": "failed"}),
            )
            return httpx.Response(200, content=body)
        return httpx.Response(200, json=job_body("failed"))

    seen: list[JobEvent] = []
    job = fake(handler).wait(JOB_ID, on_event=seen.append)
    assert job.status == "failed" and job.finished
    assert [e.event for e in seen] == ["status", "progress", "log", "status", "end"]
    assert seen[1].fraction == 0.5 and seen[2].lines == ["hi"] and seen[3].is_terminal


def test_wait_gives_up_after_its_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse(status("1.0", "queued")))  # and then nothing

    with pytest.raises(TimeoutError):
        fake(handler).wait(JOB_ID, timeout_s=0.3)


def test_a_refused_stream_raises_instead_of_reconnecting() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"title": "Not found", "detail": "no job"})

    with pytest.raises(ApiError) as raised:
        list(fake(handler).job_events(JOB_ID))
    assert raised.value.status == 404


async def test_the_async_client_does_the_same() -> None:
    requests: list[httpx.Request] = []
    answers = [
        sse(status("1.0", "queued")),
        sse(status("1.3", "succeeded"), ("end", None, {"status": "succeeded"})),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/events"):
            return httpx.Response(200, content=answers.pop(0))
        if request.url.path.endswith("/artifacts/a/b.txt"):
            return httpx.Response(200, content=b"bytes")
        return httpx.Response(200, json=job_body("succeeded"))

    async with AsyncTheodoliteClient(
        "http://api.test", transport=httpx.MockTransport(handler)
    ) as client:
        job = await client.get_job(JOB_ID)
        seen: list[JobEvent] = []
        final = await job.wait(on_event=seen.append)
        assert final.status == "succeeded"
        assert [e.status for e in seen] == ["queued", "succeeded", "succeeded"]
        assert [
            r.headers.get("Last-Event-ID") for r in requests if r.url.path.endswith("/events")
        ] == [
            None,
            "1.0",
        ]
        assert await final.download("a/b.txt") == b"bytes"


def test_every_resource_has_a_method() -> None:
    paths: list[str] = []
    queue = {"name": "cpu", "live_workers": 1, "created_at": NOW, "dead_letters": 0}
    version = {
        "name": "data",
        "version": "0.1.0",
        "sha256": "0" * 64,
        "status": "published",
        "module": "theodolite_data",
        "published_at": NOW,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url.path.removeprefix('/api/v1')}")
        if request.url.path.endswith("/archive"):
            return httpx.Response(200, content=b"\x1f\x8b")
        if "/queues/" in request.url.path:
            return httpx.Response(200, json=queue)
        if request.url.path.endswith(".svg"):
            return httpx.Response(200, text="<svg/>")
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=version)

    client = fake(handler)
    assert client.entrypoint_archive("e1") == b"\x1f\x8b"
    assert client.get_queue("cpu").model_extra == {"dead_letters": 0}
    assert client.plugin_version("data", "0.1.0").module == "theodolite_data"
    assert client.sweep_figure("s1", metric="m") == "<svg/>"
    assert client.delete_webhook("x1", "w1") is None  # type: ignore[func-returns-value]  # that it answers nothing is the point
    assert paths == [
        "GET /entrypoints/e1/archive",
        "GET /queues/cpu",
        "GET /plugins/data/0.1.0",
        "GET /sweeps/s1/figure.svg",
        "DELETE /experiments/x1/webhooks/w1",
    ]
