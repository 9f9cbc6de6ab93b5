"""The api's Prometheus metrics.

Two kinds. Events counted as they happen (histograms and counters below, observed after the
commit that recorded them). And state read at scrape time (``scrape``): jobs by status and queue,
pipelines by status, queue depths, live workers and outbox lag, from one cheap GROUP BY each and
the broker's queue lengths, bounded by a timeout. Nothing is added to a request's path for them,
and every replica reports the same state (the database's), so dashboards take ``max`` of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from theodolite import topology
from theodolite.db.status_tables import Pipeline
from theodolite.db.tables import Job, OutboxMessage, utcnow
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.state import AppState

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 3.0

JOB_DURATION = Histogram(
    "theodolite_job_duration_seconds",
    "Run time of job attempts that ended (running to its terminal status), by queue and status.",
    ["queue", "status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600),
)
JOB_QUEUE_WAIT = Histogram(
    "theodolite_job_queue_wait_seconds",
    "Time a job attempt waited queued before a worker claimed it, by queue.",
    ["queue"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600),
)
WEBHOOK_DELIVERIES = Counter(
    "theodolite_webhook_delivery_attempts",
    "Webhook delivery attempts by outcome: delivered, retryable (tried again later unless its "
    "attempts ran out) or permanent (refused destination, or a status a retry cannot mend).",
    ["outcome"],
)


@dataclass
class Snapshot:
    """What one scrape read."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, status) -> count
    pipelines: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    live_workers: Mapping[str, int] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)  # messages ready in jobs.<queue>
    outbox_unpublished: int = 0
    outbox_oldest: datetime | None = None
    at: datetime = field(default_factory=utcnow)
    up: bool = True


async def _read_database(state: AppState, snapshot: Snapshot) -> None:
    async with state.sessions() as session:
        jobs = await session.exec(
            select(Job.queue, Job.status, func.count()).group_by(col(Job.queue), col(Job.status))
        )
        snapshot.jobs = {(queue, status): count for queue, status, count in jobs}
        pipelines = await session.exec(
            select(Pipeline.status, func.count()).group_by(col(Pipeline.status))
        )
        snapshot.pipelines = dict(pipelines.all())
        outbox = await session.exec(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                col(OutboxMessage.published_at).is_(None)
            )
        )
        snapshot.outbox_unpublished, snapshot.outbox_oldest = outbox.one()
        snapshot.queues = [q.name for q in await queue_repo.all_queues(session=session)]
        # Live as GET /queues counts them.
        seen_after = utcnow() - timedelta(seconds=state.settings.worker_liveness_s)
        snapshot.live_workers = await queue_repo.live_worker_counts(
            session=session, seen_after=seen_after
        )


async def _read_depths(state: AppState, snapshot: Snapshot) -> None:
    counts = await asyncio.gather(
        *(state.broker.queue_message_count(topology.job_queue_name(q)) for q in snapshot.queues),
        return_exceptions=True,
    )
    snapshot.depth = {
        q: c for q, c in zip(snapshot.queues, counts, strict=True) if isinstance(c, int)
    }


async def read_snapshot(state: AppState, timeout_s: float = SCRAPE_TIMEOUT_S) -> Snapshot:
    """The state for one scrape; ``up`` False (and the rest empty) when it took too long or
    failed: a scrape must answer even while the database is away."""
    snapshot = Snapshot()
    try:
        async with asyncio.timeout(timeout_s):
            await _read_database(state, snapshot)
            await _read_depths(state, snapshot)
    except Exception as exc:
        log.warning("metrics: the database or broker did not answer: %s", exc)
        return Snapshot(up=False)
    return snapshot


class SnapshotCollector(Collector):
    """One scrape's ``Snapshot`` as metric families."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot
        up = GaugeMetricFamily(
            "theodolite_api_state_up", "1 when this scrape could read the database and broker."
        )
        up.add_metric([], 1.0 if s.up else 0.0)
        yield up
        if not s.up:
            return
        jobs = GaugeMetricFamily(
            "theodolite_jobs", "Jobs by queue and status.", labels=["queue", "status"]
        )
        for (queue, status), count in sorted(s.jobs.items()):
            jobs.add_metric([queue, status], count)
        yield jobs
        pipelines = GaugeMetricFamily(
            "theodolite_pipelines", "Pipelines by status.", labels=["status"]
        )
        for status, count in sorted(s.pipelines.items()):
            pipelines.add_metric([status], count)
        yield pipelines
        depth = GaugeMetricFamily(
            "theodolite_queue_depth",
            "Job messages waiting in a queue's broker queue (jobs.<queue>), not yet taken.",
            labels=["queue"],
        )
        live = GaugeMetricFamily(
            "theodolite_queue_live_workers",
            "Workers of a queue heard from recently (as GET /queues counts them).",
            labels=["queue"],
        )
        for queue in s.queues:
            if queue in s.depth:
                depth.add_metric([queue], s.depth[queue])
            live.add_metric([queue], s.live_workers.get(queue, 0))
        yield depth
        yield live
        unpublished = GaugeMetricFamily(
            "theodolite_outbox_unpublished", "Outbox events committed but not yet published."
        )
        unpublished.add_metric([], s.outbox_unpublished)
        yield unpublished
        lag = GaugeMetricFamily(
            "theodolite_outbox_lag_seconds",
            "Age of the oldest unpublished outbox event (0 when none waits).",
        )
        oldest = s.outbox_oldest
        lag.add_metric([], max(0.0, (s.at - oldest).total_seconds()) if oldest else 0.0)
        yield lag


def scrape_state(snapshot: Snapshot) -> bytes:
    """The snapshot in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
