"""Webhooks sent as a receiver on this machine sees them, through the real sender, PostgreSQL and
HTTP: a name made to resolve to 127.0.0.1 is refused when the delivery is sent (nothing connects),
and the same receiver, allow-listed, gets a signed delivery addressed to the name."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from standardwebhooks import Webhook

from tests.fixtures.database import new_job, sessions
from theodolite.db.status_tables import WebhookAttempt, WebhookDelivery
from theodolite.db.tables import utcnow
from theodolite.net_guard import IPAddress
from theodolite_api.settings import WebhookSettings
from theodolite_api.webhooks.callback_urls import new_webhook_secret
from theodolite_api.webhooks.sender import WebhookSender

__all__ = ["sessions"]

NAME = "hooks.example"
INTERNAL_DETAIL = b"stack trace of an internal service"


LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class Received:
    def __init__(self) -> None:
        self.port = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[Received]:
    """A receiver on 127.0.0.1: /ok answers 204, /gone 400 with a body that must not be kept."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            with received.lock:
                received.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            answer = INTERNAL_DETAIL if self.path == "/gone" else b""
            self.send_response(400 if self.path == "/gone" else 204)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """The test's DNS: NAME is this machine; no other name resolves."""
    if host == NAME:
        return [ipaddress.ip_address("127.0.0.1")]
    raise OSError(f"{host}: Name or service not known")


async def _send_one(
    sessions: async_sessionmaker[AsyncSession], receiver: Received, path: str, *, allowed: bool
) -> tuple[WebhookDelivery, list[WebhookAttempt], str]:
    """A job's callback delivery to NAME (the receiver), sent by a running sender, with 127.0.0.0/8
    allowed or not, until it is no longer pending; the delivery, its attempts and the job's
    webhook secret."""
    url = f"http://{NAME}:{receiver.port}{path}"
    settings = WebhookSettings(
        poll_interval_s=0.1, max_attempts=3, allow_networks=[LOOPBACK] if allowed else []
    )
    secret = new_webhook_secret()
    async with sessions() as session:
        job = await new_job(session, callback_url=url, webhook_secret=secret)
        delivery = WebhookDelivery(
            job_id=job.id,
            url=url,
            event_type="job.succeeded",
            body='{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00+00:00","data":{}}',
            dedup_key=f"callback:{uuid.uuid4()}",
            status="pending",
            attempts_left=3,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
        session.add(delivery)
        await session.commit()
        delivery_id = delivery.id
    async with (
        httpx.AsyncClient(follow_redirects=False, timeout=settings.timeout_s) as http,
        WebhookSender(sessions=sessions, http=http, settings=settings, resolve=_resolve),
    ):
        for _ in range(200):
            async with sessions() as session:
                found = await session.get(WebhookDelivery, delivery_id)
                assert found is not None
                if found.status != "pending":
                    attempts = await session.exec(
                        select(WebhookAttempt).where(col(WebhookAttempt.delivery_id) == found.id)
                    )
                    return found, list(attempts), secret
            await asyncio.sleep(0.05)
    raise AssertionError(f"the delivery to {url} stayed pending")


async def test_a_name_resolving_to_loopback_is_refused_when_sent(
    sessions: async_sessionmaker[AsyncSession], receiver: Received
) -> None:
    delivery, attempts, _ = await _send_one(sessions, receiver, "/ok", allowed=False)
    assert delivery.status == "failed"  # a refusal is final: no retries against the resolver
    assert [(a.status_code, a.error) for a in attempts] == [
        (None, f"refused: {NAME} resolves to a refused address: 127.0.0.1 is loopback")
    ]
    assert delivery.last_error == attempts[0].error
    assert receiver.requests == []  # nothing connected


async def test_an_allow_listed_receiver_gets_a_signed_delivery_pinned_to_its_address(
    sessions: async_sessionmaker[AsyncSession], receiver: Received
) -> None:
    delivery, attempts, secret = await _send_one(sessions, receiver, "/ok", allowed=True)
    assert delivery.status == "delivered"
    assert [a.status_code for a in attempts] == [204]
    [(path, headers, body)] = receiver.requests
    assert path == "/ok"
    assert headers["host"] == f"{NAME}:{receiver.port}"  # sent to the checked address, for the name
    assert Webhook(secret).verify(body, headers)["type"] == "job.succeeded"


async def test_only_the_status_of_an_answer_is_kept(
    sessions: async_sessionmaker[AsyncSession], receiver: Received
) -> None:
    delivery, attempts, _ = await _send_one(sessions, receiver, "/gone", allowed=True)
    assert len(receiver.requests) == 1
    assert delivery.status == "failed"  # 400 is not retried
    assert [(a.status_code, a.error) for a in attempts] == [(400, "answered 400")]
    assert delivery.last_error == "answered 400"
