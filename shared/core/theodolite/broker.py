"""RabbitMQ client: one robust connection per process, channels per purpose.

Publishing waits for the broker's confirm and fails on unroutable messages (``mandatory``), so a
caller that returns normally knows the message is stored in a queue.

``MessageBroker`` is the interface the services use; ``Broker`` implements it on RabbitMQ and
``theodolite.memory_broker.InMemoryBroker`` in memory, for unit tests. Both subclass it, so mypy
checks each against it, and both share its ``publish`` and ``declare_job_queue``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, cast

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable
from tenacity import AsyncRetrying, before_sleep_log, stop_after_delay, wait_exponential

from theodolite import topology
from theodolite.events import Envelope
from theodolite.signing import SigningKey

log = logging.getLogger(__name__)


class IncomingMessage(Protocol):
    """What a consumer needs of a delivered message (aio-pika's and the in-memory broker's)."""

    body: bytes
    message_id: str | None

    @property
    def headers(self) -> Mapping[str, object] | None: ...

    async def ack(self, multiple: bool = False) -> None: ...

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None: ...

    async def reject(self, requeue: bool = False) -> None: ...


class PeekedMessage(Protocol):
    """A message looked at and left in its queue (the dead letters a queue's page shows)."""

    @property
    def body(self) -> bytes: ...

    @property
    def type(self) -> str | None: ...

    @property
    def headers(self) -> Mapping[str, object] | None: ...


# Through ``MessageBroker`` a handler takes any broker's message; ``Broker`` also takes handlers
# written for aio-pika's own message type.
Handler = Callable[[IncomingMessage], Awaitable[None]]
MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class DeclaredQueue(Protocol):
    @property
    def name(self) -> str: ...

    async def bind(self, exchange: str, routing_key: str) -> object: ...

    async def unbind(self, exchange: str, routing_key: str) -> object: ...


class Closable(Protocol):
    """A broadcast subscription (its channel): closing it ends the subscription."""

    @property
    def is_closed(self) -> bool: ...

    def close(self) -> Awaitable[object]: ...


class ConsumptionHandle(Closable, Protocol):
    """A running consumer: ``stop`` takes no new message, ``close`` also hands back the rest."""

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    message_type: str
    mandatory: bool = True
    headers: Mapping[str, str] | None = None


class MessageBroker(Protocol):
    """The broker as the services use it: an async context manager owning the connection.

    With a ``signing_key`` every message it publishes is signed (``theodolite.signing``).
    """

    signing_key: SigningKey | None = None

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    @property
    def is_connected(self) -> bool: ...

    def connected_for(self) -> float:
        """Seconds since the connection was last (re)established; 0 while it is down."""
        ...

    async def declare_quorum_queue(self, name: str) -> DeclaredQueue:
        """A durable quorum queue with its dead-letter queue bound behind it."""
        ...

    async def declare_job_queue(self, queue: str) -> DeclaredQueue:
        """Declare ``jobs.<queue>`` and bind it, so a job published to it is never unroutable."""
        declared = await self.declare_quorum_queue(topology.job_queue_name(queue))
        await declared.bind(topology.JOBS_EXCHANGE.name, routing_key=queue)
        return declared

    async def delete_quorum_queue(self, name: str) -> None:
        """Delete the queue and its dead-letter queue (with what they hold); no error when
        they are not there."""
        ...

    async def delete_job_queue(self, queue: str) -> None:
        await self.delete_quorum_queue(topology.job_queue_name(queue))

    async def declare_event_queue(
        self, name: str, bindings: Sequence[str], *, retired_bindings: Sequence[str] = ()
    ) -> DeclaredQueue:
        """Declare a quorum queue on ``theodolite.events`` bound by ``bindings``, and remove the
        ``retired_bindings`` an earlier version made (removing one that is not there is no
        error), so a deployment that had them does not get those messages twice."""
        declared = await self.declare_quorum_queue(name)
        for key in bindings:
            await declared.bind(topology.EVENTS_EXCHANGE.name, routing_key=key)
        for key in retired_bindings:
            await declared.unbind(topology.EVENTS_EXCHANGE.name, routing_key=key)
        return declared

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope, *, mandatory: bool = True
    ) -> None:
        """Publish persistently and wait for the broker's confirm. ``mandatory`` refuses a
        message no queue takes; broadcasts that may have no listener turn it off."""
        await self.publish_raw(
            exchange,
            routing_key,
            envelope.to_bytes(),
            message_id=str(envelope.id),
            message_type=envelope.type.value,
            mandatory=mandatory,
        )

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        message_type: str,
        mandatory: bool = True,
    ) -> None:
        """Publish bytes encoded already (the outbox relay's stored envelopes)."""
        headers = self.signing_key.headers(body) if self.signing_key is not None else None
        await self.send(
            OutgoingMessage(
                exchange, routing_key, body, message_id, message_type, mandatory, headers
            )
        )

    async def send(self, message: OutgoingMessage) -> None:
        """Publish one message: the primitive each broker implements."""
        ...

    async def consume(
        self, queue: DeclaredQueue | str, handler: Handler, *, prefetch: int
    ) -> ConsumptionHandle:
        """Consume with manual acks, ``prefetch`` unsettled at most; the handler settles each."""
        ...

    async def consume_broadcasts(
        self, exchange: str, routing_keys: list[str], handler: Handler
    ) -> Closable:
        """This process's own queue bound to a topic exchange: every subscriber gets every
        matching message."""
        ...

    async def peek(self, name: str, limit: int) -> Sequence[PeekedMessage]:
        """Up to ``limit`` messages of a queue, left in it."""
        ...

    async def queue_message_count(self, name: str) -> int | None:
        """Messages ready in a queue, or None when it does not exist."""
        ...


@dataclass
class Consumption:
    """A running consumer. ``stop`` takes no new message; those in hand stay to be settled."""

    channel: AbstractChannel
    queue: AbstractQueue
    consumer_tag: str

    async def stop(self) -> None:
        if not self.channel.is_closed:
            await self.queue.cancel(self.consumer_tag)

    async def close(self) -> None:
        """Stop and close the channel (unsettled messages go back to the queue)."""
        if not self.channel.is_closed:
            await self.channel.close()

    @property
    def is_closed(self) -> bool:
        return self.channel.is_closed


class Broker(MessageBroker):
    """The RabbitMQ broker: owns the connection and the publishing channel."""

    def __init__(
        self,
        url: str,
        *,
        client_name: str,
        job_delivery_limit: int = 5,
        connect_timeout_s: float = 120.0,
        signing_key: SigningKey | None = None,
    ) -> None:
        self._url = url
        self.signing_key = signing_key
        self._connect_timeout_s = connect_timeout_s
        self._client_name = client_name
        self._delivery_limit = job_delivery_limit
        self._connection: AbstractRobustConnection | None = None
        self.connected_since: float | None = None
        self._publish_channel: AbstractChannel | None = None

    async def __aenter__(self) -> Self:
        connection = self._connection = await self._connect()
        self.connected_since = time.monotonic()
        connection.close_callbacks.add(self._on_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._publish_channel = await connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._declare_exchanges(self._publish_channel)
        return self

    async def _connect(self) -> AbstractRobustConnection:
        # Starting while the broker restarts is normal in a fleet: wait for it (bounded).
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=5),
            stop=stop_after_delay(self._connect_timeout_s),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                return await aio_pika.connect_robust(
                    self._url, client_properties={"connection_name": self._client_name}
                )
        raise AssertionError("unreachable: the retries end connected or raise (reraise=True)")

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._publish_channel = None

    def _on_lost(self, *_: object) -> None:
        self.connected_since = None

    def _on_reconnected(self, *_: object) -> None:
        self.connected_since = time.monotonic()

    def connected_for(self) -> float:
        return 0.0 if self.connected_since is None else time.monotonic() - self.connected_since

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker is not connected; use it as an async context manager")
        return self._connection

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @staticmethod
    async def _declare_exchanges(channel: AbstractChannel) -> None:
        for spec in topology.ALL_EXCHANGES:
            await channel.declare_exchange(spec.name, spec.type, durable=True)

    async def _publish_channel_or_raise(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise RuntimeError("Broker is not connected")
        return self._publish_channel

    async def declare_quorum_queue(self, name: str) -> AbstractQueue:
        channel = await self._publish_channel_or_raise()
        dead_name = topology.dead_letter_queue_name(name)
        dead = await channel.declare_queue(
            dead_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(topology.DEAD_LETTER_EXCHANGE.name, routing_key=dead_name)
        return await channel.declare_queue(
            name,
            durable=True,
            # topology keeps aio-pika's types out of its signatures: these are AMQP field values.
            arguments=cast(FieldTable, topology.quorum_queue_arguments(name, self._delivery_limit)),
        )

    async def delete_quorum_queue(self, name: str) -> None:
        channel = await self._publish_channel_or_raise()
        for queue in (name, topology.dead_letter_queue_name(name)):
            await channel.queue_delete(queue)

    async def send(self, message: OutgoingMessage) -> None:
        channel = await self._publish_channel_or_raise()
        target = await channel.get_exchange(message.exchange, ensure=False)
        await target.publish(
            aio_pika.Message(
                message.body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.message_type,
                headers=dict(message.headers) if message.headers else None,
            ),
            routing_key=message.routing_key,
            mandatory=message.mandatory,
        )

    async def consume(
        self, queue: DeclaredQueue | str, handler: MessageHandler, *, prefetch: int
    ) -> Consumption:
        """On a channel of its own."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        name = queue if isinstance(queue, str) else queue.name
        declared = await channel.get_queue(name, ensure=True)
        tag = await declared.consume(handler, no_ack=False)
        return Consumption(channel=channel, queue=declared, consumer_tag=tag)

    async def consume_broadcasts(
        self, exchange: str, routing_keys: list[str], handler: MessageHandler
    ) -> AbstractChannel:
        """The queue is exclusive: it goes with the connection."""
        channel = await self.connection.channel()
        own = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in routing_keys:
            await own.bind(exchange, routing_key=key)
        await own.consume(handler, no_ack=False)
        return channel

    async def peek(self, name: str, limit: int) -> list[AbstractIncomingMessage]:
        """Got, then returned to the queue."""
        channel = await self.connection.channel()
        found: list[AbstractIncomingMessage] = []
        try:
            declared = await channel.declare_queue(name, passive=True)
            for _ in range(limit):
                message = await declared.get(no_ack=False, fail=False)
                if message is None:
                    break
                found.append(message)
            for message in found:
                await message.nack(requeue=True)
        except aio_pika.exceptions.ChannelClosed:
            return []
        finally:
            if not channel.is_closed:
                await channel.close()
        return found

    async def queue_message_count(self, name: str) -> int | None:
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(name, passive=True)
            return declared.declaration_result.message_count
        except aio_pika.exceptions.ChannelClosed:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()
