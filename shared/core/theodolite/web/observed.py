"""Each HTTP request observed: its request id (``X-Request-ID``, taken from the caller or made,
and echoed back) bound to every line logged while it is handled and set on its server span, and
its count and latency by route template: never by raw path, whose ids would make a series per job.

The server span itself is FastAPI's own (its native OpenTelemetry support, on the process's
tracer provider: a child of the caller's ``traceparent``); ``TELEMETRY`` leaves probes and scrapes
out of it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from theodolite.observability.context import bound

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller's id may look like (else a new one is made): nothing a log line could be forged
# with, and short.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
# Probes and scrapes, every few seconds: counted, but no trace each.
UNTRACED = frozenset({"/metrics", "/healthz", "/readyz"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED


# FastAPI(telemetry=TELEMETRY): its request spans, without the probes'.
TELEMETRY: TelemetryConfig = {"exclude": _untraced}
UNMATCHED = "(unmatched)"

REQUESTS = Counter(
    "theodolite_http_requests",
    "HTTP requests answered, by service, method, route template and status code.",
    ["service", "method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "theodolite_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of its body), by route template.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def request_id(headers: Headers) -> str:
    """The caller's id when it is acceptable, else a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    return given if given and _ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template the router matched (``/api/v1/jobs/{job_id}``), prefix included."""
    # FastAPI's telemetry has it whole, when it runs (tracing on).
    known = getattr(scope.get("fastapi.telemetry"), "route", None)
    if isinstance(known, str):
        return known
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    # The route knows its own path, not the prefix it was included under (a literal, such as
    # /api/v1): the request path's leading segments, as many as the template lacks.
    segments = scope["path"].strip("/").split("/")
    extra = len(segments) - len(template.strip("/").split("/"))
    if extra <= 0 or ":path}" in template:
        return template
    return "/" + "/".join(segments[:extra]) + template


class ObservedRequests:
    """ASGI middleware: ``app.add_middleware(ObservedRequests, service="api")``."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self._app = app
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = request_id(headers)
        method = scope["method"]
        status = 500  # what a request that raised before answering counts as

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        started = time.perf_counter()
        # FastAPI's server span, current here (its telemetry wraps the middleware), if any.
        trace.get_current_span().set_attribute("theodolite.request_id", rid)
        with bound(request_id=rid):
            try:
                await self._app(scope, receive, send_with_id)
            finally:
                labels = (self._service, method, route_template(scope))
                REQUESTS.labels(*labels, str(status)).inc()
                REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


def metrics_response(*scraped: bytes) -> Response:
    """The process's metrics (and ``scraped`` exposition text gathered for this scrape) in
    Prometheus' text format."""
    body = generate_latest(REGISTRY) + b"".join(scraped)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
