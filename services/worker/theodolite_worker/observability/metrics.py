"""The worker's Prometheus metrics, served on a port of their own when one is set (a worker has
no HTTP server otherwise): job start times (claim to process start, warm or cold) as they happen,
and its slots, running jobs and warm pool read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the job runner imports this module: no import of it back at run time
    from theodolite_worker.settings import WorkerSettings
    from theodolite_worker.state import WorkerState
    from theodolite_worker.warm_pool import WarmPool

JOB_START = Histogram(
    "theodolite_worker_job_start_seconds",
    "Time from a job's claim to its process started, by queue and start (warm: forked from the "
    "warm pool; cold: a new interpreter). Includes fetching the archive and plugins.",
    ["queue", "start"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


class WorkerCollector(Collector):
    """Slots, running jobs and the warm pool, as they are when scraped."""

    def __init__(
        self, settings: WorkerSettings, state: WorkerState, warm_pool: WarmPool | None
    ) -> None:
        self._settings = settings
        self._state = state
        self._warm_pool = warm_pool

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["queue", "worker_id"])
        family.add_metric([self._settings.queue, self._settings.worker_id], value)
        return family

    def collect(self) -> Iterator[Metric]:
        pool = self._warm_pool
        yield self._gauge(
            "theodolite_worker_slots", "Jobs this worker runs at once.", self._settings.slots
        )
        yield self._gauge(
            "theodolite_worker_jobs_running", "Jobs running here now.", len(self._state.controls)
        )
        yield self._gauge(
            "theodolite_worker_busy",
            "Job messages in hand: waiting for a slot, being claimed or running.",
            self._state.busy,
        )
        yield self._gauge(
            "theodolite_worker_warm_pool_ready",
            "1 when the warm pool can start jobs (0: they start cold).",
            1.0 if pool is not None and pool.ready else 0.0,
        )
        yield self._gauge(
            "theodolite_worker_warm_pool_preloaded_modules",
            "Modules the warm pool holds imported.",
            len(pool.preloaded) if pool is not None else 0,
        )
        if pool is not None and pool.startup_s is not None:
            yield self._gauge(
                "theodolite_worker_warm_pool_startup_seconds",
                "How long the warm pool took to import its modules.",
                pool.startup_s,
            )


class _ProcessMetrics(Collector):
    """The process-wide registry's metrics (``JOB_START``, the process collectors)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def worker_registry(
    settings: WorkerSettings, state: WorkerState, warm_pool: WarmPool | None
) -> CollectorRegistry:
    """What this worker's ``/metrics`` shows: its own state and the process's metrics (a
    registry per worker, so that workers sharing a process in tests do not collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    registry.register(WorkerCollector(settings, state, warm_pool))
    return registry


@contextmanager
def serving_metrics(
    settings: WorkerSettings, state: WorkerState, warm_pool: WarmPool | None
) -> Iterator[int | None]:
    """``/metrics`` on ``metrics_host:metrics_port`` while entered (the port it got, or None
    when no port is set): a thread of prometheus_client's own, off the event loop."""
    if settings.metrics_port is None:
        yield None
        return
    server, thread = start_http_server(
        settings.metrics_port,
        settings.metrics_host,
        registry=worker_registry(settings, state, warm_pool),
    )
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
