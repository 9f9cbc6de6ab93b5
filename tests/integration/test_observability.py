"""What an operator sees, on a real stack: the api's /metrics on its internal listener (none on the
public port) after a job ran, JSON log lines carrying request and job context, and one trace
across a traced api replica and a traced worker, exported over OTLP/HTTP to a receiver here."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.stack import Stack, api_replica
from tests.integration.helpers import create_queue, job_target, unique, wait_for_end, wait_until
from theodolite.devstack import start_worker, stop_process


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint (protobuf) keeping what it is sent."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append(
                        ExportedSpan(
                            attributes.get("service.name", ""),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _log_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    path = stack.config.state_dir / "logs" / f"{name}.log"
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass  # a child's stray output, or a line from before a restart
    return lines


def test_metrics_and_log_context_after_a_job(
    stack: Stack, api: httpx.Client, scripted_archive: bytes
) -> None:
    target = job_target(api, scripted_archive)
    request_id = unique("it")
    answer = api.post(
        "/jobs", json={**target, "params": {"code": 0}}, headers={"X-Request-ID": request_id}
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Request-ID"] == request_id
    job = wait_for_end(api, answer.json()["id"])
    assert job["status"] == "succeeded"

    internal = stack.config.api_internal_url
    assert httpx.get(f"{stack.config.api_url}/metrics").status_code == 404
    samples = _samples(httpx.get(f"{internal}/metrics", timeout=30).text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert value("theodolite_api_state_up") == 1
    assert value("theodolite_jobs", queue="cpu", status="succeeded") >= 1
    assert value("theodolite_queue_live_workers", queue="cpu") >= 1
    assert value("theodolite_job_duration_seconds_count", queue="cpu", status="succeeded") >= 1
    assert value("theodolite_job_queue_wait_seconds_count", queue="cpu") >= 1
    submitted = {"service": "api", "method": "POST", "route": "/api/v1/jobs", "status": "202"}
    assert value("theodolite_http_requests_total", **submitted) >= 1
    registry = _samples(httpx.get(f"{stack.config.registry_url}/metrics", timeout=30).text)
    assert any(name == "theodolite_http_requests_total" for name, _ in registry)

    # The api's lines of that request carry its id; the worker's lines of that job its context.
    assert any(line.get("request_id") == request_id for line in _log_lines(stack, "api"))
    worker_lines = [
        line for line in _log_lines(stack, "worker-cpu-0") if line.get("job_id") == job["id"]
    ]
    assert worker_lines
    assert all(line["attempt"] == "1" and line["worker_id"] for line in worker_lines)


def test_one_trace_across_a_traced_api_and_worker(
    stack: Stack, api: httpx.Client, scripted_archive: bytes, receiver: Receiver
) -> None:
    traced = {
        "THEODOLITE_TRACING_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
    }
    queue = create_queue(api)
    worker = start_worker(
        stack.config, queue, env={**traced, "THEODOLITE_WORKER_WARM_POOL": "false"}
    )
    try:
        target = job_target(api, scripted_archive)
        with api_replica(stack, unique("api-traced"), traced) as replica:
            answer = httpx.post(
                f"{replica}/jobs",
                json={**target, "params": {"code": 0}, "queue": queue},
                headers=stack.headers,
                timeout=60,
            )
            assert answer.status_code == 202, answer.text
            assert wait_for_end(api, answer.json()["id"])["status"] == "succeeded"

            def exported(service: str, name: str) -> list[ExportedSpan]:
                return [s for s in receiver.spans if (s.service, s.name) == (service, name)]

            wait_until(lambda: bool(exported("theodolite-worker", "run job")), 30, "run span")
        (submit,) = exported("theodolite-api", "POST /api/v1/jobs")
        worker_spans = {
            name: exported("theodolite-worker", name)
            for name in ("consume job.submitted", "claim job", "run job")
        }
        assert all(len(spans) == 1 for spans in worker_spans.values()), worker_spans
        (consumed,), (claim,), (run,) = worker_spans.values()
        assert {consumed.trace_id, claim.trace_id, run.trace_id} == {submit.trace_id}
        assert claim.parent_id == run.parent_id == consumed.span_id
        # The worker consumed what a relay published (the traced replica's, in a span of its
        # own; the stack's untraced one, as the request wrote it): a span of the request's trace.
        api_spans = {s.span_id: s for s in receiver.spans if s.trace_id == submit.trace_id}
        assert api_spans[consumed.parent_id].name in {"publish job.submitted", "fastapi.endpoint"}
    finally:
        stop_process(stack.config, worker)
        api.delete(f"/queues/{queue}")  # refused once a job used it, like the others'
