"""One typed consumer adapter: decode a message once, dispatch it by payload type, and settle it
explicitly.

A handler takes the envelope, its typed payload and the delivery. What happens to the message is
said, never implied by a stray ``try``: returning settles it as ``ack`` (unless the handler
settled it itself, as a worker does once its claim is answered); raising ``RetryLater`` puts it
back after a pause (it counts a delivery, so a message that always fails ends in the dead-letter
queue after the delivery limit); ``Requeue`` puts it back at once for another consumer;
``Reject`` sends it to the dead-letter queue. A message that does not decode, or whose payload no
handler takes, is rejected. An unexpected exception is settled by the consumer's ``on_error``: one
outcome for every failure, or a function that tells a failure that passes (a database restart:
retry) from one that would fail the same way again (a value the database refuses: reject at once,
so it does not hold up the messages behind it). Modelled on FastStream's ``AckMessage``/
``NackMessage``/``RejectMessage``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind
from pydantic import BaseModel

# IncomingMessage lives with the brokers; handlers written for this module import it from here.
from theodolite.broker import IncomingMessage as IncomingMessage
from theodolite.events import Envelope, UndecodableEvent, decode_event
from theodolite.observability.context import bound
from theodolite.observability.tracing import span_from
from theodolite.signing import KeyLookup, signer_worker, verified_signer

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)


class Outcome(StrEnum):
    ACK = "ack"
    RETRY_LATER = "retry_later"
    REQUEUE = "requeue"
    REJECT = "reject"


class Settle(Exception):  # noqa: N818 (a control-flow signal, like StopIteration)
    """Raised by a handler to say what becomes of its message."""

    outcome: Outcome

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(Settle):
    """Back to the queue after ``delay_s``; counts a delivery towards the dead-letter limit."""

    outcome = Outcome.RETRY_LATER

    def __init__(self, reason: str = "", *, delay_s: float = 1.0) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Requeue(Settle):
    """Back to the queue at once, for another consumer (this one cannot take it now)."""

    outcome = Outcome.REQUEUE


class Reject(Settle):
    """To the dead-letter queue: the message can never be handled."""

    outcome = Outcome.REJECT


class Delivery:
    """The message being handled; a handler may settle it early (``ack`` before long work)."""

    def __init__(self, message: IncomingMessage, signer: str | None = None) -> None:
        self.message = message
        self.outcome: Outcome | None = None
        # Who signed it (``theodolite.signing``), where the consumer checks signatures.
        self.signer = signer

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    async def ack(self) -> None:
        if self.outcome is None:
            self.outcome = Outcome.ACK
            await self.message.ack()

    async def settle(self, signal: Settle) -> None:
        if self.outcome is not None:
            log.warning("message %s settled already; %s ignored", self.message.message_id, signal)
            return
        self.outcome = signal.outcome
        if isinstance(signal, RetryLater):
            await asyncio.sleep(signal.delay_s)
            await self.message.nack(requeue=True)
        elif isinstance(signal, Requeue):
            await self.message.nack(requeue=True)
        elif isinstance(signal, Reject):
            await self.message.reject(requeue=False)
        else:  # pragma: no cover - every Settle subclass is handled above
            raise TypeError(f"unknown outcome {signal!r}")


Handler = Callable[[Envelope, Any, Delivery], Awaitable[None]]
# What an unexpected exception means: ``RETRY_LATER`` or ``REJECT`` (anything else retries).
FailureOutcome = Callable[[Exception], Outcome]


def _always(outcome: Outcome) -> FailureOutcome:
    def decide(exc: Exception) -> Outcome:
        return outcome

    return decide


@dataclass(frozen=True)
class _Route:
    handler: Handler
    name: str


class Consumer:
    """Handlers registered per payload type; use an instance as the broker's message handler.

    ``on_error`` says what an unexpected exception means: ``RetryLater`` (the default, with a
    pause) for handlers whose failures are transient (a database restart), ``Reject`` for ones
    where a retry cannot help, or a ``FailureOutcome`` that decides per exception.

    With ``signers`` (a key lookup, ``theodolite.signing``) a message must carry a valid
    signature: one that does not is dropped before any handler sees it, and ``Delivery.signer``
    names who signed the rest. Dropped rather than dead-lettered: a forger must not be able to
    fill the dead-letter queue operators read.
    """

    def __init__(
        self,
        name: str,
        *,
        retry_delay_s: float = 1.0,
        on_error: Outcome | FailureOutcome = Outcome.RETRY_LATER,
        ignore_unhandled: bool = False,
        signers: KeyLookup | None = None,
    ) -> None:
        self.name = name
        self._signers = signers
        self._routes: dict[type[BaseModel], _Route] = {}
        self._retry_delay_s = retry_delay_s
        self._on_error = on_error if callable(on_error) else _always(on_error)
        self._ignore_unhandled = ignore_unhandled

    def register(
        self, payload_type: type[P], handler: Callable[[Envelope, P, Delivery], Awaitable[None]]
    ) -> None:
        if payload_type in self._routes:
            raise ValueError(f"{self.name}: a handler for {payload_type.__name__} exists already")
        self._routes[payload_type] = _Route(handler, getattr(handler, "__name__", repr(handler)))

    def on(self, *payload_types: type[BaseModel]) -> Callable[[Handler], Handler]:
        """Decorator form of ``register`` for one or more payload types."""

        def decorate(handler: Handler) -> Handler:
            for payload_type in payload_types:
                self.register(payload_type, handler)
            return handler

        return decorate

    @property
    def payload_types(self) -> frozenset[type[BaseModel]]:
        return frozenset(self._routes)

    async def __call__(self, message: IncomingMessage) -> None:
        await self.consume(message)

    async def consume(self, message: IncomingMessage) -> Outcome:
        """Decode, dispatch and settle one message; the outcome."""
        signer = None
        if self._signers is not None:
            signer = verified_signer(message.body, message.headers, self._signers)
            if signer is None:
                log.warning(
                    "%s: message %s is unsigned or its signature is wrong; dropped",
                    self.name,
                    message.message_id,
                )
                await message.ack()
                return Outcome.ACK
        delivery = Delivery(message, signer)
        try:
            envelope, payload = decode_event(message.body)
        except UndecodableEvent as exc:
            log.error("%s: dead-lettering message %s: %s", self.name, message.message_id, exc)
            await delivery.settle(Reject(str(exc)))
            return Outcome.REJECT
        await self.dispatch(envelope, payload, delivery)
        assert delivery.outcome is not None
        return delivery.outcome

    async def dispatch(self, envelope: Envelope, payload: BaseModel, delivery: Delivery) -> None:
        """Handle in the envelope's trace (a span child of its sender's) and with the job, its
        attempt and the signing worker bound to every line logged meanwhile."""
        job = {"job_id": envelope.job_id, "attempt": envelope.attempt} if envelope.job_id else {}
        with (
            bound(**job, worker_id=signer_worker(delivery.signer)),
            span_from(
                f"consume {envelope.type.value}",
                envelope.trace,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.consumer": self.name,
                    "theodolite.event_id": str(envelope.id),
                },
            ),
        ):
            await self._dispatch(envelope, payload, delivery)

    async def _dispatch(self, envelope: Envelope, payload: BaseModel, delivery: Delivery) -> None:
        route = self._routes.get(type(payload))
        if route is None:
            if self._ignore_unhandled:
                await delivery.ack()
                return
            reason = f"{self.name} takes no {envelope.type} (takes: {self._taken()})"
            log.error("dead-lettering %s %s: %s", envelope.type, envelope.id, reason)
            await delivery.settle(Reject(reason))
            return
        try:
            await route.handler(envelope, payload, delivery)
        except Settle as signal:
            if signal.reason:
                log.info(
                    "%s: %s %s -> %s: %s",
                    self.name,
                    envelope.type,
                    envelope.id,
                    signal.outcome,
                    signal.reason,
                )
            await delivery.settle(signal)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._on_error(exc) is Outcome.REJECT:
                log.exception(
                    "%s: %s %s failed; dead-lettering", self.name, envelope.type, envelope.id
                )
                await delivery.settle(Reject("handler failed"))
            else:
                log.exception(
                    "%s: could not handle %s %s; will retry", self.name, envelope.type, envelope.id
                )
                await delivery.settle(RetryLater("handler failed", delay_s=self._retry_delay_s))
            return
        await delivery.ack()

    def _taken(self) -> str:
        return ", ".join(sorted(t.__name__ for t in self._routes)) or "nothing"
