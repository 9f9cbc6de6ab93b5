"""An in-memory ``theodolite.broker.MessageBroker``, for unit tests only.

It keeps RabbitMQ's semantics where the services rely on them: direct and topic exchanges
(``*`` one word, ``#`` any), ``mandatory`` publishes that fail when no queue takes the message,
manual acks with a prefetch per consumer, a delivery limit after which a message goes to its
``<queue>.dead`` queue, exclusive broadcast queues. Integration tests use the real RabbitMQ.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from theodolite import topology
from theodolite.broker import DeclaredQueue, MessageBroker, OutgoingMessage
from theodolite.signing import SigningKey

if TYPE_CHECKING:
    from theodolite.broker import Broker

# Tests hand it handlers typed for the messages they expect (``MemoryMessage``, aio-pika's).
Handler = Callable[[Any], Awaitable[None]]


class Unroutable(RuntimeError):
    """A mandatory publish no queue took (aio-pika raises DeliveryError)."""


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic matching: ``*`` is one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class MemoryMessage:
    body: bytes
    message_id: str | None
    type: str | None
    routing_key: str
    exchange: str
    delivery_count: int = 0
    subscriber_tag: str | None = None
    _queue: MemoryQueue | None = field(default=None, repr=False)
    settled: str | None = None
    headers: dict[str, object] = field(default_factory=dict)

    async def ack(self, multiple: bool = False) -> None:
        self._settle("ack")

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self._settle("requeue" if requeue else "dead")

    async def reject(self, requeue: bool = False) -> None:
        self._settle("requeue" if requeue else "dead")

    def _settle(self, how: str) -> None:
        if self.settled is not None:
            raise RuntimeError(f"message {self.message_id} settled twice ({self.settled}, {how})")
        self.settled = how
        assert self._queue is not None
        self._queue.settled(self, how)


def _takes(queue: MemoryQueue, message: OutgoingMessage) -> bool:
    """Whether one of the queue's bindings routes the message (the jobs exchange is direct)."""
    direct = message.exchange == topology.JOBS_EXCHANGE.name
    key = message.routing_key
    return any(
        exchange == message.exchange and (bound == key if direct else topic_matches(bound, key))
        for exchange, bound in queue.bindings
    )


@dataclass
class _Subscriber:
    handler: Handler
    prefetch: int
    tag: str
    in_flight: int = 0
    active: bool = True


class MemoryQueue:
    def __init__(
        self, broker: InMemoryBroker, name: str, *, delivery_limit: int | None, dead: str | None
    ) -> None:
        self._broker = broker
        self.name = name
        self.delivery_limit = delivery_limit
        self.dead = dead
        self.ready: deque[MemoryMessage] = deque()
        self.subscribers: list[_Subscriber] = []
        self.bindings: set[tuple[str, str]] = set()

    async def bind(self, exchange: str, routing_key: str) -> None:
        self.bindings.add((exchange, routing_key))

    async def unbind(self, exchange: str, routing_key: str) -> None:
        self.bindings.discard((exchange, routing_key))

    def put(self, message: MemoryMessage) -> None:
        message._queue, message.settled = self, None
        self.ready.append(message)
        self._broker._kick()

    def settled(self, message: MemoryMessage, how: str) -> None:
        for subscriber in self.subscribers:
            if message.subscriber_tag == subscriber.tag:
                subscriber.in_flight -= 1
        if how == "requeue":
            if self.delivery_limit is not None and message.delivery_count > self.delivery_limit:
                self._broker._dead_letter(self, message)
            else:
                self.put(message)
        elif how == "dead":
            self._broker._dead_letter(self, message)
        self._broker._kick()

    @property
    def message_count(self) -> int:
        return len(self.ready)


class MemoryConsumption:
    """What ``consume`` returns: ``stop`` takes no new message, ``close`` also requeues."""

    def __init__(self, queue: MemoryQueue, subscriber: _Subscriber) -> None:
        self.queue = queue
        self._subscriber = subscriber
        self.is_closed = False

    async def stop(self) -> None:
        self._subscriber.active = False

    async def close(self) -> None:
        self._subscriber.active = False
        self.is_closed = True
        if self._subscriber in self.queue.subscribers:
            self.queue.subscribers.remove(self._subscriber)


class InMemoryBroker(MessageBroker):
    """Async context manager like ``Broker``; ``drain()`` runs until nothing is left to do."""

    def __init__(
        self,
        *,
        job_delivery_limit: int = 5,
        client_name: str = "memory",
        signing_key: SigningKey | None = None,
    ) -> None:
        self._delivery_limit = job_delivery_limit
        self.signing_key = signing_key
        self.queues: dict[str, MemoryQueue] = {}
        self.published: list[MemoryMessage] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._tags = itertools.count(1)
        self._connected = False

    async def __aenter__(self) -> Self:
        self._connected = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._connected = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connected_for(self) -> float:
        return float("inf") if self._connected else 0.0

    def _queue(self, name: str, *, delivery_limit: int | None, dead: str | None) -> MemoryQueue:
        if name not in self.queues:
            self.queues[name] = MemoryQueue(self, name, delivery_limit=delivery_limit, dead=dead)
        return self.queues[name]

    async def declare_quorum_queue(self, name: str) -> MemoryQueue:
        dead = topology.dead_letter_queue_name(name)
        self._queue(dead, delivery_limit=None, dead=None)
        return self._queue(name, delivery_limit=self._delivery_limit, dead=dead)

    async def delete_quorum_queue(self, name: str) -> None:
        for queue in (name, topology.dead_letter_queue_name(name)):
            self.queues.pop(queue, None)

    async def send(self, message: OutgoingMessage) -> None:
        if not self._connected:
            raise RuntimeError("Broker is not connected")
        targets = [queue for queue in self.queues.values() if _takes(queue, message)]
        self.published.append(self._delivered(message))
        if not targets and message.mandatory:
            raise Unroutable(f"no queue takes {message.routing_key!r} on {message.exchange}")
        for queue in targets:
            queue.put(self._delivered(message))

    @staticmethod
    def _delivered(message: OutgoingMessage) -> MemoryMessage:
        """A copy per queue (and one for ``published``): each is settled on its own."""
        return MemoryMessage(
            message.body,
            message.message_id,
            message.message_type,
            message.routing_key,
            message.exchange,
            headers=dict(message.headers or {}),
        )

    async def consume(
        self, queue: DeclaredQueue | str, handler: Handler, *, prefetch: int
    ) -> MemoryConsumption:
        name = queue if isinstance(queue, str) else queue.name
        if name not in self.queues:
            raise KeyError(f"no queue {name!r} (declare it first)")
        declared = self.queues[name]
        subscriber = _Subscriber(handler, prefetch, f"ctag-{next(self._tags)}")
        declared.subscribers.append(subscriber)
        self._kick()
        return MemoryConsumption(declared, subscriber)

    async def consume_broadcasts(
        self, exchange: str, routing_keys: list[str], handler: Handler
    ) -> MemoryConsumption:
        own = self._queue(f"amq.gen-{uuid.uuid4().hex}", delivery_limit=None, dead=None)
        for key in routing_keys:
            await own.bind(exchange, key)
        return await self.consume(own.name, handler, prefetch=0)

    async def queue_message_count(self, name: str) -> int | None:
        queue = self.queues.get(name)
        return None if queue is None else queue.message_count

    async def peek(self, name: str, limit: int) -> list[MemoryMessage]:
        queue = self.queues.get(name)
        return [] if queue is None else list(queue.ready)[:limit]

    def _dead_letter(self, queue: MemoryQueue, message: MemoryMessage) -> None:
        if queue.dead is not None and queue.dead in self.queues:
            self.queues[queue.dead].put(
                MemoryMessage(
                    message.body, message.message_id, message.type, queue.dead, "dead-letter"
                )
            )

    def _kick(self) -> None:
        for queue in self.queues.values():
            for subscriber in queue.subscribers:
                while (
                    subscriber.active
                    and queue.ready
                    and (subscriber.prefetch == 0 or subscriber.in_flight < subscriber.prefetch)
                ):
                    message = queue.ready.popleft()
                    message.delivery_count += 1
                    message.subscriber_tag = subscriber.tag
                    subscriber.in_flight += 1
                    task = asyncio.ensure_future(subscriber.handler(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every delivered message was handled and nothing deliverable is left."""
        async with asyncio.timeout(timeout_s):
            while True:
                await asyncio.sleep(0)
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                    continue
                deliverable = any(
                    queue.ready and any(s.active for s in queue.subscribers)
                    for queue in self.queues.values()
                )
                if not deliverable:
                    return


if TYPE_CHECKING:

    def _both_implement_message_broker() -> list[MessageBroker]:
        # mypy refuses to build a subclass that leaves a member of MessageBroker out.
        return [Broker("amqp://", client_name="check"), InMemoryBroker()]
