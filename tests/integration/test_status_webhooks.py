"""Webhooks as a receiver sees them: a real HTTP server in this process, every delivery checked
with the Standard Webhooks reference library (not the testbed's own signing code)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.integration.helpers import create_experiment, submit, upload_ok, wait_for_end, wait_until

STATUS_TYPES = {"job.queued", "job.running", "job.succeeded"}


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | None = None


@dataclass
class Receiver:
    """Records every request; answers by path: /ok 204, /flaky 503 twice per webhook-id then
    200, /gone 400, /hang (waits until released, then 200)."""

    url: str
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> str:
        return f"{self.url}{path}"

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            request = Request(self.path, dict(self.headers), body, time.monotonic())
            with receiver.lock:
                receiver.requests.append(request)
                tries = sum(
                    1
                    for r in receiver.requests
                    if r.path == self.path
                    and r.headers["webhook-id"] == request.headers["webhook-id"]
                )
            if self.path == "/hang":
                receiver.release.wait(60)
                code = 200
            elif self.path == "/flaky":
                code = 503 if tries <= 2 else 200
            elif self.path == "/gone":
                code = 400
            else:
                code = 204
            request.answered = code
            try:
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the api gave up waiting (its per-request time limit)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()


def _subscribe(api: httpx.Client, experiment_id: str, url: str, **extra: Any) -> dict[str, Any]:
    response = api.post(f"/experiments/{experiment_id}/webhooks", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def _run_hello(
    api: httpx.Client, example_archive: Callable[[str], bytes], experiment_id: str, **body: Any
) -> dict[str, Any]:
    entrypoint = upload_ok(api, example_archive("hello"))
    response = submit(api, experiment_id=experiment_id, entrypoint_id=entrypoint["id"], **body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert wait_for_end(api, job["id"])["status"] == "succeeded"
    return job


def _verified(secret: str, requests: list[Request]) -> list[dict[str, Any]]:
    return [Webhook(secret).verify(r.body, r.headers) for r in requests]


def test_every_delivery_verifies_with_the_standard_library(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    hook = _subscribe(api, experiment["id"], receiver.to("/ok"))
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in api.get(f"/experiments/{experiment['id']}/webhooks/{hook['id']}").json()
    job = _run_hello(api, example_archive, experiment["id"], callback_url=receiver.to("/callback"))
    assert job["webhook_secret"].startswith("whsec_")

    wait_until(lambda: len(receiver.on("/ok")) >= 3 and len(receiver.on("/callback")) >= 3)
    time.sleep(1.5)  # nothing more comes
    for path, secret in (("/ok", hook["secret"]), ("/callback", job["webhook_secret"])):
        payloads = _verified(secret, receiver.on(path))
        assert sorted(p["type"] for p in payloads) == sorted(STATUS_TYPES), path
        assert {p["data"]["job_id"] for p in payloads} == {job["id"]}
        assert {p["data"]["status"] for p in payloads} == {"queued", "running", "succeeded"}
    # Each endpoint's secret is its own.
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(
            receiver.on("/callback")[0].body, receiver.on("/callback")[0].headers
        )

    log = api.get(f"/experiments/{experiment['id']}/webhooks/{hook['id']}/deliveries").json()
    assert log["count"] == 3
    assert {d["status"] for d in log["data"]} == {"delivered"}
    assert {d["webhook_id"] for d in log["data"]} == {
        r.headers["webhook-id"] for r in receiver.on("/ok")
    }
    assert all(
        len(d["attempt_log"]) == 1 and d["attempt_log"][0]["status_code"] == 204
        for d in log["data"]
    )
    callbacks = api.get(f"/jobs/{job['id']}/callback/deliveries").json()
    assert callbacks["count"] == 3 and {d["status"] for d in callbacks["data"]} == {"delivered"}


def test_a_tampered_body_or_a_stale_timestamp_fails_verification(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    hook = _subscribe(api, experiment["id"], receiver.to("/ok"), event_types=["job.succeeded"])
    _run_hello(api, example_archive, experiment["id"])
    wait_until(lambda: len(receiver.on("/ok")) == 1)
    delivered = receiver.on("/ok")[0]
    webhook = Webhook(hook["secret"])
    assert webhook.verify(delivered.body, delivered.headers)["type"] == "job.succeeded"

    tampered = json.loads(delivered.body)
    tampered["data"]["status"] = "failed"
    with pytest.raises(WebhookVerificationError, match="signature"):
        webhook.verify(json.dumps(tampered, separators=(",", ":")), delivered.headers)

    old = datetime.now(UTC) - timedelta(minutes=10)
    stale_headers = {
        **delivered.headers,
        "webhook-timestamp": str(int(old.timestamp())),
        # Signed properly for that old time: only its age is wrong.
        "webhook-signature": webhook.sign(
            delivered.headers["webhook-id"], old, delivered.body.decode()
        ),
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhook.verify(delivered.body, stale_headers)
    replayed = {**delivered.headers, "webhook-timestamp": str(int(time.time()) + 1)}
    with pytest.raises(WebhookVerificationError):
        webhook.verify(delivered.body, replayed)  # a fresh timestamp on an old signature


def test_a_receiver_failing_twice_gets_each_event_once(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    hook = _subscribe(api, experiment["id"], receiver.to("/flaky"))
    _run_hello(api, example_archive, experiment["id"])

    def accepted() -> list[Request]:
        return [r for r in receiver.on("/flaky") if r.answered == 200]

    wait_until(lambda: len(accepted()) == 3, timeout_s=60, what="three accepted deliveries")
    time.sleep(1.5)
    requests = receiver.on("/flaky")
    payloads = _verified(hook["secret"], requests)  # retries are signed afresh, and verify
    ids = [r.headers["webhook-id"] for r in accepted()]
    assert len(ids) == len(set(ids)) == 3  # each event accepted exactly once
    assert len(requests) == 9
    accepted_types = [Webhook(hook["secret"]).verify(r.body, r.headers)["type"] for r in accepted()]
    assert sorted(accepted_types) == sorted(STATUS_TYPES)
    assert {p["type"] for p in payloads} == STATUS_TYPES
    for webhook_id in ids:
        tries = [r for r in requests if r.headers["webhook-id"] == webhook_id]
        assert [r.answered for r in tries] == [503, 503, 200]
        assert len({r.body for r in tries}) == 1  # the same bytes every time
        gaps = [b.at - a.at for a, b in zip(tries, tries[1:], strict=False)]
        assert gaps[1] > gaps[0] * 1.3  # backing off

    log = api.get(f"/experiments/{experiment['id']}/webhooks/{hook['id']}/deliveries").json()
    assert {d["status"] for d in log["data"]} == {"delivered"}
    for delivery in log["data"]:
        assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 503, 200]
    assert (
        api.get(f"/experiments/{experiment['id']}/webhooks/{hook['id']}").json()[
            "consecutive_failures"
        ]
        == 0
    )


def test_a_hanging_receiver_does_not_delay_other_deliveries(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    _subscribe(api, experiment["id"], receiver.to("/hang"))
    _subscribe(api, experiment["id"], receiver.to("/hang"))  # more hanging requests than slots
    _subscribe(api, experiment["id"], receiver.to("/ok"))
    started = time.monotonic()
    _run_hello(api, example_archive, experiment["id"])
    wait_until(lambda: len(receiver.on("/ok")) == 3, timeout_s=8, what="the healthy deliveries")
    assert time.monotonic() - started < 15
    assert receiver.on("/hang")  # the hanging receiver was called, and still holds them
    assert all(r.answered is None for r in receiver.on("/hang"))
    for hook in api.get(f"/experiments/{experiment['id']}/webhooks").json()["data"]:
        api.delete(f"/experiments/{experiment['id']}/webhooks/{hook['id']}")


def test_consecutive_failures_disable_a_subscription_and_redelivery(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    hook = _subscribe(api, experiment["id"], receiver.to("/gone"))
    base = f"/experiments/{experiment['id']}/webhooks/{hook['id']}"
    _run_hello(api, example_archive, experiment["id"])
    wait_until(
        lambda: api.get(f"{base}/deliveries", params={"status": "failed"}).json()["count"] == 3,
        what="three failed deliveries (400 is not retried)",
    )
    delivery = api.get(f"{base}/deliveries").json()["data"][0]
    assert len(delivery["attempt_log"]) == 1 and delivery["attempt_log"][0]["status_code"] == 400

    # Manual redelivery: the same webhook-id again, until the run of failures disables it.
    while api.get(base).json()["enabled"]:
        sent = len(receiver.on("/gone"))
        response = api.post(f"{base}/deliveries/{delivery['id']}/redeliver")
        assert response.status_code == 202, response.text
        wait_until(lambda sent=sent: len(receiver.on("/gone")) > sent, what="the redelivery")
        wait_until(
            lambda: api.get(f"{base}/deliveries/{delivery['id']}").json()["status"] == "failed"
        )
    subscription = api.get(base).json()
    assert subscription["consecutive_failures"] == 15  # THEODOLITE_WEBHOOK_DISABLE_AFTER_FAILURES
    assert "failed attempts in a row" in subscription["disabled_reason"]
    redelivered = [
        r for r in receiver.on("/gone") if r.headers["webhook-id"] == delivery["webhook_id"]
    ]
    assert len(redelivered) == 13  # the first attempt and 12 redeliveries
    refused = api.post(f"{base}/deliveries/{delivery['id']}/redeliver")
    assert refused.status_code == 409

    enabled = api.patch(base, json={"enabled": True}).json()
    assert enabled["enabled"] and enabled["consecutive_failures"] == 0
    assert api.delete(base).status_code == 204
    assert api.get(base).status_code == 404


def test_bad_subscriptions_are_refused_with_every_problem(api: httpx.Client, stack: Any) -> None:
    experiment = create_experiment(api)
    response = api.post(
        f"/experiments/{experiment['id']}/webhooks",
        json={
            "url": f"{stack.config.api_url}/hook",
            "event_types": ["job.succeeded", "job.exploded"],
        },
    )
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert fields == {"url", "event_types.1"}
    assert (
        api.post(
            f"/experiments/{experiment['id']}/webhooks", json={"url": "ftp://example.com/x"}
        ).status_code
        == 422
    )
    assert api.get(f"/experiments/{experiment['id']}/webhooks").json()["count"] == 0


def test_a_pipelines_start_and_end_go_to_the_experiments_subscriptions(
    api: httpx.Client, receiver: Receiver, example_archive: Callable[[str], bytes]
) -> None:
    experiment = create_experiment(api)
    hook = _subscribe(api, experiment["id"], receiver.to("/ok"))  # the default event types
    jobs_only = _subscribe(api, experiment["id"], receiver.to("/jobs"), event_types=["job.failed"])
    entrypoint = upload_ok(api, example_archive("hello"))
    stage = {"entrypoint_id": entrypoint["id"]}
    created = api.post(
        "/pipelines",
        json={
            "experiment_id": experiment["id"],
            "name": "hooked",
            "stages": {"one": stage, "two": {**stage, "params": {"greeting": "${one.run_id}"}}},
        },
    )
    assert created.status_code == 202, created.text
    pipeline = created.json()

    def pipeline_deliveries() -> list[dict[str, Any]]:
        payloads = _verified(hook["secret"], receiver.on("/ok"))
        return [p for p in payloads if p["type"].startswith("pipeline.")]

    wait_until(lambda: len(pipeline_deliveries()) >= 2, 120, "the pipeline's end delivered")
    time.sleep(1.5)  # nothing more comes
    started, ended = sorted(pipeline_deliveries(), key=lambda p: p["timestamp"])
    assert (started["type"], ended["type"]) == ("pipeline.running", "pipeline.succeeded")
    assert {started["data"]["pipeline_id"], ended["data"]["pipeline_id"]} == {pipeline["id"]}
    assert started["data"]["stages"] == {"one": "queued", "two": "waiting"}
    assert ended["data"]["stages"] == {"one": "succeeded", "two": "succeeded"}
    assert ended["data"]["mlflow_run_id"] == pipeline["mlflow_run_id"]
    # Its job events came too (every status change is the default), and nothing to a
    # subscription that asked for neither.
    job_types = [p["type"] for p in _verified(hook["secret"], receiver.on("/ok"))]
    assert job_types.count("job.succeeded") == 2
    assert receiver.on("/jobs") == [] and jobs_only["event_types"] == ["job.failed"]
    log = api.get(f"/experiments/{experiment['id']}/webhooks/{hook['id']}/deliveries").json()
    ours = [d for d in log["data"] if d["event_type"].startswith("pipeline.")]
    assert {(d["pipeline_id"], d["job_id"], d["status"]) for d in ours} == {
        (pipeline["id"], None, "delivered")
    }
