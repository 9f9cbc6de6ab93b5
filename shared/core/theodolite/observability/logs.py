"""Log lines as JSON (one object a line, for log collectors) or as plain text on a terminal, each
carrying the bound context (``observability.context``) and the current trace and span ids.

Configured by each service's ``main()``, never at import: ``configure_logging(settings.log, ...)``.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import IO

from opentelemetry import trace
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.json import JsonFormatter

from theodolite.observability.context import FIELDS, current

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class LogFormat(StrEnum):
    AUTO = "auto"  # text when the stream is a terminal, else JSON
    JSON = "json"
    TEXT = "text"


class LogSettings(BaseSettings):
    """How a service writes its log (to stderr)."""

    model_config = SettingsConfigDict(env_prefix="THEODOLITE_LOG_")

    format: LogFormat = Field(
        LogFormat.AUTO,
        description="json (one object a line), text, or auto: text on a terminal, else json.",
    )
    level: str = Field("INFO", description="The lowest level written (DEBUG, INFO, WARNING...).")


class ContextFilter(logging.Filter):
    """Copies the bound fields and the current trace onto each record (as extra attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


class TextFormatter(logging.Formatter):
    """The classic line, followed by whichever context fields the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(fields)}]" if fields else line


def json_formatter(service: str, static: dict[str, str] | None = None) -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service, **(static or {})},
    )


def formatter(
    settings: LogSettings, stream: IO[str], service: str, static: dict[str, str] | None = None
) -> logging.Formatter:
    """JSON or text, as the settings say (auto: text only on a terminal)."""
    text = settings.format is LogFormat.TEXT or (
        settings.format is LogFormat.AUTO and stream.isatty()
    )
    return TextFormatter(TEXT_FORMAT) if text else json_formatter(service, static)


def configure_logging(
    settings: LogSettings,
    *,
    service: str,
    static: dict[str, str] | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Route every logger (uvicorn's too, when it is told ``log_config=None``) through one
    handler on ``stream`` (stderr); ``static`` fields go on every JSON line (a worker's id)."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(settings, stream, service, static))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    return handler
