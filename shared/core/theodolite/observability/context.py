"""What a log line is about (the job, attempt, worker and request being handled), held in a
context variable so that every line logged while handling it carries the same fields."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType

FIELDS = ("job_id", "attempt", "worker_id", "request_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_fields: ContextVar[Mapping[str, str]] = ContextVar("theodolite_log_fields", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields bound where this code runs (tasks inherit them from the code that made them)."""
    return _fields.get()


def bind(**fields: object) -> Token[Mapping[str, str]]:
    """Add fields (None ones are left out) until ``unbind`` with the token returned."""
    added = {name: str(value) for name, value in fields.items() if value is not None}
    return _fields.set(MappingProxyType({**_fields.get(), **added}))


def unbind(token: Token[Mapping[str, str]]) -> None:
    _fields.reset(token)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """``bind`` for the duration of a block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)
