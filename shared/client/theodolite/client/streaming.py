"""Following a server-sent event stream across reconnects (shared by both clients): the last
id seen goes back as Last-Event-ID, so the api continues exactly after it."""

from __future__ import annotations

import json
import time

import httpx

from theodolite.client.models import JobEvent
from theodolite.client.sse import SseDecoder

# The api sends a keep-alive comment on idle streams every 15 s (by default).
READ_TIMEOUT_S = 45.0
RECONNECT_STATUSES = frozenset({502, 503, 504})
MAX_RECONNECT_DELAY_S = 10.0


class StreamState:
    def __init__(self, *, last_event_id: str | None, timeout_s: float | None) -> None:
        self.last_event_id = last_event_id
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.decoder = SseDecoder()
        self.failures = 0

    def connected(self) -> None:
        retry_ms = self.decoder.retry_ms
        self.decoder = SseDecoder()  # a half-received event is dropped, as the spec says
        self.decoder.retry_ms = retry_ms
        self.failures = 0

    def feed(self, line: str) -> JobEvent | None:
        raw = self.decoder.feed(line)
        if raw is None:
            return None
        if raw.id is not None:
            self.last_event_id = raw.id
        data = json.loads(raw.data) if raw.data else {}
        return JobEvent.model_validate({**data, "id": raw.id, "event": raw.event})

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"the event stream did not end within {self.timeout_s} s")

    def reconnect_delay(self) -> float:
        """How long to wait before reconnecting (TimeoutError when out of time)."""
        self.check_deadline()
        self.failures += 1
        first = (self.decoder.retry_ms or 500) / 1000
        delay = min(MAX_RECONNECT_DELAY_S, first * 2 ** min(self.failures - 1, 5))
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))


def event_headers(state: StreamState) -> dict[str, str]:
    headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
    if state.last_event_id:
        headers["Last-Event-ID"] = state.last_event_id
    return headers


def stream_timeout(state: StreamState) -> httpx.Timeout:
    remaining = state.remaining()
    read = READ_TIMEOUT_S if remaining is None else max(0.1, min(READ_TIMEOUT_S, remaining))
    return httpx.Timeout(10.0, read=read)
