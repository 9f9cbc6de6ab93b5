"""RabbitMQ topology: every exchange and queue name, and how each is declared. No string
literals for these elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika import ExchangeType


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType


JOBS_EXCHANGE = ExchangeSpec("theodolite.jobs", ExchangeType.DIRECT)
EVENTS_EXCHANGE = ExchangeSpec("theodolite.events", ExchangeType.TOPIC)
CONTROL_EXCHANGE = ExchangeSpec("theodolite.control", ExchangeType.TOPIC)
DEAD_LETTER_EXCHANGE = ExchangeSpec("theodolite.dead-letter", ExchangeType.DIRECT)

ALL_EXCHANGES = (JOBS_EXCHANGE, EVENTS_EXCHANGE, CONTROL_EXCHANGE, DEAD_LETTER_EXCHANGE)

# Routing keys on the topic exchanges (besides each event type's own, e.g. ``job.log``).
STATUS_CHANGED_ROUTING_KEY = "job.status_changed"  # events: the api recorded a transition
JOB_CANCEL_ROUTING_KEY = "job.cancel"  # control: stop this job wherever it runs
PIPELINE_STATUS_CHANGED_ROUTING_KEY = "pipeline.status_changed"  # events: a pipeline moved

# The api's durable queue of job events, applied one at a time and in order: competing consumers
# across api replicas. It hears the api's own status_changed too (``job.#``) and leaves it alone.
API_EVENTS_QUEUE = "events.api"
API_EVENTS_BINDINGS = ("job.#",)
API_EVENTS_DEAD_QUEUE = "events.api.dead"
# Bindings earlier versions made on ``events.api``, removed when the api starts: worker events
# have their own queue now, and would otherwise arrive on both.
API_EVENTS_RETIRED_BINDINGS = ("worker.#",)
# Worker heartbeats and plugin announcements: a durable queue of their own, so they never wait
# behind a slow job event (the reaper would call a healthy worker's jobs lost).
API_WORKER_EVENTS_QUEUE = "events.api.workers"
API_WORKER_EVENTS_BINDINGS = ("worker.#",)

# Every worker's own auto-delete queue on ``theodolite.control``.
WORKER_CONTROL_BINDINGS = ("plugin.*", JOB_CANCEL_ROUTING_KEY)

# Jobs waiting on others (``depends_on``): the api's own durable queue of status changes, on which
# a dependency's end queues or skips what waits for it (competing consumers across replicas).
API_DEPENDENCIES_QUEUE = "events.api.dependencies"
API_DEPENDENCIES_BINDINGS = (STATUS_CHANGED_ROUTING_KEY,)

# Status out. Webhook deliveries: a durable queue of its own, competing consumers across api
# replicas, fed by the api's status changes and the workers' log and progress events.
WEBHOOK_EVENTS_QUEUE = "events.webhooks"
WEBHOOK_EVENTS_BINDINGS = (
    STATUS_CHANGED_ROUTING_KEY,
    "job.log",
    "job.progress",
    PIPELINE_STATUS_CHANGED_ROUTING_KEY,
)
# Server-sent events: each api replica's own exclusive, auto-delete queue (fan-out).
LIVE_EVENTS_BINDINGS = ("job.#", PIPELINE_STATUS_CHANGED_ROUTING_KEY)

# Queue names users create: lower-case letters, digits, '-' and '_'.
QUEUE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DEFAULT_QUEUES = ("cpu", "gpu")


def job_queue_name(queue: str) -> str:
    return f"jobs.{queue}"


def dead_letter_queue_name(source_queue: str) -> str:
    return f"{source_queue}.dead"


def quorum_queue_arguments(source_queue: str, delivery_limit: int) -> dict[str, object]:
    """Durable quorum queue whose poison messages end in ``<queue>.dead``, never dropped."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-routing-key": dead_letter_queue_name(source_queue),
    }
