"""The dashboard and the scrape configuration in deploy/ match what the services serve: every
series the Grafana dashboard queries (and every label it groups by) is one the api, the registry
or the worker registers, and Prometheus scrapes each service where it serves /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import theodolite_registry.observability.metrics  # noqa: F401 (the registry's)
import yaml
from prometheus_client import REGISTRY, Metric
from theodolite_registry.settings import RegistrySettings

import theodolite_api.observability.metrics  # noqa: F401 (registers the api's metrics)
import theodolite_worker.observability.metrics  # noqa: F401 (the worker's job start times)
from theodolite.web.observed import REQUEST_SECONDS
from theodolite_api.observability.metrics import Snapshot, SnapshotCollector
from theodolite_api.settings import ApiSettings
from theodolite_worker.observability.metrics import WorkerCollector
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.state import WorkerState
from theodolite_worker.warm_pool import WarmPool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "theodolite.json"
SCRAPES = ROOT / "deploy" / "prometheus" / "prometheus.yml"
WORKER_METRICS_PORT = 9101  # what deploy/README.md tells operators to set

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _families() -> list[Metric]:
    """Every family the services expose: the process-wide ones and the scrape-time ones."""
    snapshot = Snapshot(
        jobs={("cpu", "queued"): 1}, pipelines={"running": 1}, queues=["cpu"], depth={"cpu": 0}
    )
    pool = WarmPool([])  # never started: only its figures are read
    pool.startup_s = 1.0
    worker = WorkerCollector(WorkerSettings(), WorkerState(), pool)
    return [*REGISTRY.collect(), *SnapshotCollector(snapshot).collect(), *worker.collect()]


def _served() -> dict[str, set[str]]:
    """Series name -> the label names it carries."""
    REQUEST_SECONDS.labels("api", "GET", "/healthz")  # a child, so its labels show
    served: dict[str, set[str]] = {}
    for family in _families():
        labels = {name for sample in family.samples for name in sample.labels}
        labels |= set(getattr(family, "_labelnames", ()))
        for suffix in SUFFIXES.get(family.type, ("",)):
            served[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    # Labelled families with no child yet have no samples: their labels come from the metric.
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the registered objects
        names = getattr(collector, "_labelnames", None)
        if names:
            for series in REGISTRY._collector_to_names[collector]:  # noqa: SLF001
                served.setdefault(series, set()).update(names)
                if series.endswith("_bucket"):
                    served[series].add("le")
    return served


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_series_the_dashboard_queries_is_served() -> None:
    served = _served()
    queried = {name for expr in _expressions() for name in re.findall(r"\btheodolite_\w+", expr)}
    assert queried, "the dashboard queries nothing"
    assert queried - served.keys() == set()
    # It shows each kind the services serve (nothing served goes unseen).
    for prefix in (
        "theodolite_jobs",
        "theodolite_queue_depth",
        "theodolite_queue_live_workers",
        "theodolite_outbox_lag_seconds",
        "theodolite_job_duration_seconds_bucket",
        "theodolite_job_queue_wait_seconds_bucket",
        "theodolite_webhook_delivery_attempts_total",
        "theodolite_plugin_publishes_total",
        "theodolite_pipelines",
        "theodolite_worker_warm_pool_ready",
        "theodolite_worker_job_start_seconds_bucket",
        "theodolite_http_requests_total",
        "theodolite_http_request_duration_seconds_bucket",
    ):
        assert prefix in queried, prefix


def test_the_dashboard_groups_only_by_labels_its_series_carry() -> None:
    served = _served()
    for expr in _expressions():
        names = re.findall(r"\btheodolite_\w+", expr)
        carried = set().union(*(served[name] for name in names))
        for grouping in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (label.strip() for label in grouping.split(",")):
                assert label in carried, (expr, label)
        for label in re.findall(r"\{\{(\w+)\}\}", json.dumps(expr)):
            assert label in carried, (expr, label)


def test_prometheus_scrapes_each_service_where_it_serves_metrics() -> None:
    config = yaml.safe_load(SCRAPES.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    where = {
        name: {(n, sd["port"]) for sd in job["dns_sd_configs"] for n in sd["names"]}
        for name, job in jobs.items()
    }
    assert where == {
        # The internal listener's port: the public one has no /metrics.
        "theodolite-api": {("api", ApiSettings().internal_port)},
        "theodolite-plugin-registry": {("plugin-registry", RegistrySettings().port)},
        "theodolite-worker": {
            ("worker-cpu", WORKER_METRICS_PORT),
            ("worker-gpu", WORKER_METRICS_PORT),
        },
    }
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())
    # The names are compose.yaml's services.
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {name for names in where.values() for name, _ in names} <= services.keys()
