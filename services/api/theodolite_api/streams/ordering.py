"""One job's stream items in the order the api recorded them, each passed on once.

Items come from two places: the record (replayed at connect) and live events, which reach a
replica from two publishers (the api's outbox relay for status changes, the worker for log and
progress), so not always in order. What is known orders them anyway:

- a job's transitions form a chain: each ``job.status_changed`` names the status it left, so a
  transition waits until the one before it was passed on, and its transition id (growing per
  job, one transaction after the other) tells a repeat;
- an attempt's log and progress follow its ``running`` (the claim records it before the worker
  sends anything), so they wait for it; the worker's own events come in order, and the status
  change an event causes is published only after the api heard that event;
- items are passed on in ``(attempt, seq)`` order, and one whose key is not past the last one
  passed on is a repeat.

Ids: ``<attempt>.<seq>`` for the first record of an ``(attempt, seq)``, ``<attempt>.<seq>.<n>``
for the n-th transition after it with the same key (the submission's ``queued`` and the claim's
``running`` share ``(1, 0)``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from theodolite.events import Envelope, JobProgress
from theodolite.lifecycle import JobStatus
from theodolite_api.streams.ids import START, JobEventKey


@dataclass(frozen=True)
class StatusItem:
    """A recorded transition."""

    job_id: uuid.UUID
    attempt: int
    seq: int
    transition_id: int
    from_status: str | None
    status: str
    at: datetime
    detail: str | None = None


@dataclass(frozen=True)
class LogItem:
    """A recorded (or about to be recorded) chunk of log lines."""

    job_id: uuid.UUID
    attempt: int
    seq: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ProgressItem:
    """A progress report, live only."""

    envelope: Envelope
    payload: JobProgress

    @property
    def attempt(self) -> int:
        return self.envelope.attempt

    @property
    def seq(self) -> int:
        return self.envelope.seq


Item = StatusItem | LogItem | ProgressItem
_KIND_ORDER = {StatusItem: 0, LogItem: 1, ProgressItem: 2}


def _sort_key(item: Item) -> tuple[int, int, int, int]:
    tid = item.transition_id if isinstance(item, StatusItem) else 0
    return (item.attempt, item.seq, _KIND_ORDER[type(item)], tid)


@dataclass
class JobState:
    """How far a job's chain is known: its status, last transition id, attempt that runs."""

    status: str | None = None
    transition_id: int = 0
    started_attempt: int = 0
    status_key: JobEventKey | None = None


class JobOrder:
    """Orders one job's items. ``add`` them in any order; ``ready`` gives what may go now.

    Items at or before ``after`` (the client's Last-Event-ID) are taken into account but not
    given again.
    """

    def __init__(self, after: JobEventKey | None = None, state: JobState | None = None) -> None:
        self.last = after or START
        self.state = state or JobState()
        self._pending: list[Item] = []

    @property
    def status(self) -> str | None:
        return self.state.status

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def add(self, item: Item) -> None:
        self._pending.append(item)

    def ready(self, upto: tuple[int, int] | None = None) -> list[tuple[JobEventKey, Item]]:
        """Items to pass on now, in order, with their keys; nothing after ``upto``
        (``(attempt, seq)``: a replay page ends there, what follows it is not read yet)."""
        self._pending.sort(key=_sort_key)
        out: list[tuple[JobEventKey, Item]] = []
        while self._pending:
            item = self._pending[0]
            if upto is not None and (item.attempt, item.seq) > upto:
                break
            if isinstance(item, StatusItem):
                if item.transition_id <= self.state.transition_id:
                    self._pending.pop(0)  # a repeat
                    continue
                if item.from_status != self.state.status:
                    break  # the transition before it has not come yet
                self._pending.pop(0)
                key = self._accept(item)
            else:
                key = JobEventKey(item.attempt, item.seq)
                if key <= self.last:
                    self._pending.pop(0)  # a repeat, or of an attempt given up
                    continue
                if item.attempt > self.state.started_attempt:
                    break  # its attempt's ``running`` has not come yet
                self._pending.pop(0)
            if key > self.last:
                self.last = key
                out.append((key, item))
        return out

    def _accept(self, item: StatusItem) -> JobEventKey:
        state = self.state
        previous = state.status_key
        n = (
            previous.n + 1
            if previous is not None and (previous.attempt, previous.seq) == (item.attempt, item.seq)
            else 0
        )
        key = JobEventKey(item.attempt, item.seq, n)
        state.status, state.transition_id, state.status_key = item.status, item.transition_id, key
        if item.status == JobStatus.RUNNING.value:
            state.started_attempt = max(state.started_attempt, item.attempt)
        return key


def chained(items: list[StatusItem]) -> list[StatusItem]:
    """Recorded transitions (in the record's order) with the status each one left filled in:
    the record does not keep it, the chain does."""
    chain: list[StatusItem] = []
    previous: str | None = None
    for item in items:
        chain.append(replace(item, from_status=previous))
        previous = item.status
    return chain
