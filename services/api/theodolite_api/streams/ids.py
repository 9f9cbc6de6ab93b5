"""Event ids of the server-sent event streams, and how a client's ``Last-Event-ID`` resumes one.

A job's stream is ordered by the job's own ``(attempt, seq)``: every recorded transition and log
chunk carries the ``(attempt, seq)`` of the event that caused it. Two transitions can share one
(``queued`` at submission and ``running`` at the claim are both ``(1, 0)``), so the id is
``<attempt>.<seq>`` for the first record of an ``(attempt, seq)`` and ``<attempt>.<seq>.<n>`` for
the n-th after it.

An experiment's stream interleaves many jobs, so no job's key orders it. Its id is a cursor over
the identity column of the transitions table, ``T<last>[-<id>@<epoch>,...]``: the highest row id
taken into account, and the ids below it that were not visible yet (a transaction still in flight
took them, or their announcement had not come), each with the time it was first missed. Such a
row comes live when its transaction commits (every replica hears every experiment's
``job.status_changed``), or in the replay of a client resuming with the id; an id still missing
after ``HOLE_TTL_S`` belonged to a transaction that rolled back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

HOLE_TTL_S = 60
MAX_HOLES = 64


class BadEventId(ValueError):
    """A Last-Event-ID this stream never sent."""


@dataclass(frozen=True, order=True)
class JobEventKey:
    attempt: int
    seq: int
    n: int = 0

    def __str__(self) -> str:
        return (
            f"{self.attempt}.{self.seq}" if self.n == 0 else f"{self.attempt}.{self.seq}.{self.n}"
        )

    @classmethod
    def parse(cls, text: str) -> JobEventKey:
        parts = text.strip().split(".")
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
            raise BadEventId(f"{text!r} is not <attempt>.<seq>[.<n>]")
        return cls(*(int(p) for p in parts))

    def covers(self, attempt: int, seq: int) -> bool:
        """Whether everything recorded up to ``(attempt, seq)`` comes at or before this key."""
        return (self.attempt, self.seq) >= (attempt, seq)


START = JobEventKey(-1, -1, -1)


@dataclass
class TableCursor:
    """Position in one identity-ordered table: ``last`` and the ids below it still missing."""

    last: int = 0
    holes: dict[int, float] = field(default_factory=dict)  # id -> when first missed (epoch s)

    def wanted_holes(self, now: float | None = None) -> list[int]:
        """Missing ids still worth asking for (the others rolled back, surely)."""
        now = time.time() if now is None else now
        self.holes = {i: t for i, t in self.holes.items() if now - t < HOLE_TTL_S}
        return sorted(self.holes)

    def take(self, row_id: int, visible_ids: set[int], now: float | None = None) -> None:
        """Account for row ``row_id``; ids between the old ``last`` and it that are not
        ``visible`` are in flight: remember them."""
        if row_id <= self.last:
            self.holes.pop(row_id, None)
            return
        now = time.time() if now is None else now
        for missing in range(self.last + 1, row_id):
            if missing not in visible_ids:
                self.holes[missing] = now
        self.last = row_id
        if len(self.holes) > MAX_HOLES:
            by_age = sorted(self.holes, key=lambda i: (self.holes[i], i))
            for oldest in by_age[: len(by_age) - MAX_HOLES]:
                del self.holes[oldest]

    def __str__(self) -> str:
        text = str(self.last)
        if self.holes:
            text += "-" + ",".join(f"{i}@{int(t)}" for i, t in sorted(self.holes.items()))
        return text

    @classmethod
    def parse(cls, text: str) -> TableCursor:
        last, _, holes = text.partition("-")
        if not last.isdigit():
            raise BadEventId(f"{text!r} is not a table position")
        cursor = cls(last=int(last))
        for hole in filter(None, holes.split(",")):
            row_id, _, at = hole.partition("@")
            if not (row_id.isdigit() and at.isdigit()) or int(row_id) >= cursor.last:
                raise BadEventId(f"{hole!r} is not a missing row of {text!r}")
            cursor.holes[int(row_id)] = float(at)
        return cursor


def parse_experiment_cursor(text: str) -> TableCursor:
    if not text.startswith("T"):
        raise BadEventId(f"{text!r} is not an experiment stream id")
    return TableCursor.parse(text[1:])


def experiment_event_id(cursor: TableCursor) -> str:
    return f"T{cursor}"
