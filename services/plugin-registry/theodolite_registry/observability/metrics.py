"""The registry's Prometheus metrics (its HTTP requests are counted by ``ObservedRequests``)."""

from __future__ import annotations

from prometheus_client import Counter

PLUGIN_PUBLISHES = Counter(
    "theodolite_plugin_publishes",
    "Plugin publish attempts by source (upload, bucket) and outcome: published, existing (the "
    "same bytes again), invalid, conflict (name==version with other bytes), forbidden (another "
    "group's name) or error.",
    ["source", "outcome"],
)
