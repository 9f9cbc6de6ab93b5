"""Sends due deliveries: bounded concurrency, a few requests per URL at most, a per-request time
limit, retries with exponential backoff on timeouts, connection errors, 429 and 5xx.

A delivery is leased (its next attempt moved past the request's time limit) in the transaction
that claims it, so replicas never send it at once, and one whose sender died is sent again when
the lease runs out (same ``webhook-id``: receivers deduplicate). A slow or dead receiver holds
only its own URL's few slots; every other delivery goes on. Each attempt resolves the URL's host
and connects only to an address checked then (``destinations``); a refused one fails the
delivery with the reason, and nothing is connected to.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import WebhookAttempt, WebhookSubscription
from theodolite.db.tables import utcnow
from theodolite.periodic import PeriodicService
from theodolite_api.observability.metrics import WEBHOOK_DELIVERIES
from theodolite_api.repositories import webhooks as webhook_repo
from theodolite_api.repositories.webhooks import DueDelivery
from theodolite_api.settings import WebhookSettings
from theodolite_api.webhooks.destinations import (
    DestinationGuard,
    DestinationRefused,
    Resolver,
    system_resolver,
)
from theodolite_api.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 30.0
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Outcome:
    """What came of one attempt: the receiver's status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None  # None: delivered
    retryable: bool = True
    wait_s: float | None = None  # the receiver's Retry-After


def webhook_id(delivery_id: object) -> str:
    """The ``webhook-id`` of a delivery: the same on every attempt and redelivery."""
    return f"msg_{getattr(delivery_id, 'hex', delivery_id)}"


def retry_delay_s(settings: WebhookSettings, attempts_made: int) -> float:
    """Exponential in the attempts made so far, with +-20 % jitter, capped."""
    base = settings.retry_base_s * 2 ** max(0, attempts_made - 1)
    return min(settings.retry_max_delay_s, base * random.uniform(0.8, 1.2))


def retry_after_s(response: httpx.Response) -> float | None:
    """A ``Retry-After`` header in seconds (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - utcnow()).total_seconds())
    except (TypeError, ValueError):  # unparsable, or a date without a zone
        return None


def _outcome_label(outcome: Outcome) -> str:
    if outcome.error is None:
        return "delivered"
    return "retryable" if outcome.retryable else "permanent"


def is_retryable(status_code: int | None) -> bool:
    """No answer (timeout, connection error), 429 and 5xx are worth another try."""
    return status_code is None or status_code == 429 or status_code >= 500


class WebhookSender(PeriodicService):
    """Claims due deliveries every ``poll_interval_s`` (retries come due on their own), or at
    once when woken (``notify``: new or re-enabled deliveries, a request finished)."""

    name = "webhook sender"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: WebhookSettings,
        resolve: Resolver = system_resolver,
    ) -> None:
        super().__init__(interval_s=settings.poll_interval_s)
        self._sessions = sessions
        self._http = http
        self._settings = settings
        self._guard = DestinationGuard(allowed=settings.allow_networks, resolve=resolve)
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self) -> None:
        """New or re-enabled deliveries: look now rather than at the next poll."""
        self.wake()

    async def run_once(self) -> None:
        while True:
            free = self._settings.concurrency - len(self._tasks)
            if free <= 0:
                return
            claimed = await self._claim(free)
            for delivery in claimed:
                self._start(delivery)
            if len(claimed) < free:
                return  # nothing more is due now

    async def teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim(self, free: int) -> list[DueDelivery]:
        now = utcnow()
        lease = timedelta(seconds=self._settings.timeout_s + LEASE_MARGIN_S)
        busy = {
            url
            for url, count in self._in_flight.items()
            if count >= self._settings.per_endpoint_concurrency
        }
        async with self._sessions() as session:
            claimed = await webhook_repo.claim_due(
                session=session,
                now=now,
                lease_until=now + lease,
                limit=free,
                busy_urls=busy,
                per_url=self._settings.per_endpoint_concurrency,
                in_flight=self._in_flight,
            )
            await session.commit()
        return claimed

    def _start(self, delivery: DueDelivery) -> None:
        self._in_flight[delivery.url] = self._in_flight.get(delivery.url, 0) + 1
        task = asyncio.create_task(self._send(delivery), name=f"webhook-{delivery.id}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            left = self._in_flight.get(delivery.url, 1) - 1
            if left > 0:
                self._in_flight[delivery.url] = left
            else:
                self._in_flight.pop(delivery.url, None)
            self.wake()

        task.add_done_callback(done)

    async def _send(self, delivery: DueDelivery) -> None:
        started_at = utcnow()
        started = time.monotonic()
        outcome = await self._attempt(delivery)
        duration_ms = int((time.monotonic() - started) * 1000)
        WEBHOOK_DELIVERIES.labels(_outcome_label(outcome)).inc()
        try:
            await self._record(delivery, started_at, outcome, duration_ms)
        except Exception:
            # The lease runs out and the delivery is tried again.
            log.exception("could not record the outcome of webhook delivery %s", delivery.id)

    async def _attempt(self, delivery: DueDelivery) -> Outcome:
        headers = signed_headers(
            delivery.secret, webhook_id(delivery.id), int(time.time()), delivery.body
        )
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                response = await self._guard.post(
                    self._http, delivery.url, content=delivery.body.encode(), headers=headers
                )
        except DestinationRefused as exc:
            # Nothing was connected to; asking the resolver again would not make it allowed.
            return Outcome(error=f"refused: {exc}"[:MAX_ERROR_LENGTH], retryable=False)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(error=f"no answer within {self._settings.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        status_code = response.status_code
        if 200 <= status_code < 300:
            return Outcome(status_code=status_code)
        # Only the status is kept: what a receiver answers is not the testbed's to store.
        return Outcome(
            status_code=status_code,
            error=f"answered {status_code}",
            retryable=is_retryable(status_code),
            wait_s=retry_after_s(response),
        )

    async def _record(
        self, due: DueDelivery, at: datetime, outcome: Outcome, duration_ms: int
    ) -> None:
        settings = self._settings
        status_code, error = outcome.status_code, outcome.error
        async with self._sessions() as session:
            delivery = await webhook_repo.get_delivery(
                session=session, delivery_id=due.id, for_update=True
            )
            if delivery is None:
                return  # its subscription was deleted meanwhile
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    at=at,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            now = utcnow()
            delivery.attempts += 1
            delivery.attempts_left = max(0, delivery.attempts_left - 1)
            delivery.last_attempt_at = at
            delivery.last_status_code = status_code
            delivery.last_error = error
            subscription = (
                await session.get(
                    WebhookSubscription, delivery.subscription_id, with_for_update=True
                )
                if delivery.subscription_id is not None
                else None
            )
            if error is None:
                delivery.status = "delivered"
                delivery.delivered_at = now
                delivery.next_attempt_at = None
                if subscription is not None:
                    subscription.consecutive_failures = 0
            else:
                if outcome.retryable and delivery.attempts_left > 0:
                    delay = retry_delay_s(settings, delivery.attempts)
                    if outcome.wait_s is not None:
                        delay = min(settings.retry_max_delay_s, max(delay, outcome.wait_s))
                    delivery.next_attempt_at = now + timedelta(seconds=delay)
                else:
                    delivery.status = "failed"
                    delivery.next_attempt_at = None
                if subscription is not None:
                    subscription.consecutive_failures += 1
                    if (
                        subscription.enabled
                        and subscription.consecutive_failures >= settings.disable_after_failures
                    ):
                        subscription.enabled = False
                        subscription.disabled_reason = (
                            f"{subscription.consecutive_failures} failed attempts in a row; "
                            f"the last: {error}"
                        )
                        log.warning(
                            "webhook subscription %s disabled: %s",
                            subscription.id,
                            subscription.disabled_reason,
                        )
                    subscription.updated_at = now
            await session.commit()
