"""Traces whose context rides in the event envelope (``Envelope.trace``, W3C trace context), so
one trace follows a job from its submission through the outbox, the broker and the worker to the
api recording its end.

Off unless switched on: ``configure_tracing`` installs a tracer provider only when an OTLP endpoint
is set (``THEODOLITE_TRACING_OTLP_ENDPOINT``, or OpenTelemetry's own
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Without one, spans
are not recorded, envelopes carry an empty ``trace`` and nothing is exported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the SDK is imported only where tracing is switched on (events need the API)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACER_NAME = "theodolite"
_OTEL_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_propagator = TraceContextTextMapPropagator()


class TracingSettings(BaseSettings):
    """OpenTelemetry traces (exported over OTLP/HTTP when an endpoint is set)."""

    model_config = SettingsConfigDict(env_prefix="THEODOLITE_TRACING_")

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces. Unset: "
        "OTEL_EXPORTER_OTLP_ENDPOINT is used if set, else no traces are recorded or exported.",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded (a child follows its parent).",
    )


def exporting(settings: TracingSettings) -> bool:
    return bool(settings.otlp_endpoint or any(os.environ.get(v) for v in _OTEL_ENDPOINT_VARIABLES))


def tracer_provider(
    settings: TracingSettings, *, service: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """A provider exporting in batches to ``exporter`` or else to the OTLP endpoint; None when
    neither is given (tracing off)."""
    if exporter is None:
        if not exporting(settings):
            return None
        # Imported only when used: it pulls in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBasedTraceIdRatio(settings.sample_ratio),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(settings: TracingSettings, *, service: str) -> TracerProvider | None:
    """Install the process's tracer provider (once a process: OpenTelemetry's rule) when tracing
    is on; the caller shuts it down at exit, so the last spans are exported."""
    provider = tracer_provider(settings, service=service)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_trace() -> dict[str, str]:
    """The current span's context as W3C headers (``traceparent``, ``tracestate``); empty when
    no span is being recorded."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def trace_context(carrier: Mapping[str, str]) -> Context:
    """The context a ``current_trace()`` carrier names, to start child spans in."""
    return _propagator.extract(dict(carrier))


@contextmanager
def span_from(
    name: str,
    carrier: Mapping[str, str],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span | None]:
    """A span child of the carrier's context, current for the block; no span (None) when the
    carrier is empty: untraced messages (heartbeats) start no trace of their own."""
    if not carrier:
        yield None
        return
    with tracer().start_as_current_span(
        name, context=trace_context(carrier), kind=kind, attributes=attributes
    ) as span:
        yield span
