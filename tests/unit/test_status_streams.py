"""Event ids, cursors and the ordering rules of the server-sent event streams."""

import time
import uuid
from datetime import UTC, datetime

import pytest

from theodolite.events import JobLog, JobProgress, make_event
from theodolite_api.streams.job_stream import (
    _merge_progress,
    _Recheck,
    keyed_records,
    ready_progress,
)
from theodolite_api.streams.live import LiveHub, LiveProgress, Subscription
from theodolite_api.repositories.events import JobRecord, JobWatermark
from theodolite_api.streams.ids import (
    HOLE_TTL_S,
    START,
    BadEventId,
    JobEventKey,
    TableCursor,
    parse_experiment_cursor,
)

JOB = uuid.uuid4()
OTHER = uuid.uuid4()
EXPERIMENT = uuid.uuid4()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _status(row_id: int, attempt: int, seq: int, status: str, job: uuid.UUID = JOB) -> JobRecord:
    return JobRecord("status", row_id, job, attempt, seq, status=status, at=AT)


def _log(row_id: int, attempt: int, seq: int, job: uuid.UUID = JOB) -> JobRecord:
    return JobRecord("log", row_id, job, attempt, seq, lines=(f"line {seq}",))


def _progress(attempt: int, seq: int, job: uuid.UUID = JOB, age_s: float = 0.0) -> LiveProgress:
    envelope = make_event(
        JobProgress(fraction=0.5), producer="t", job_id=job, attempt=attempt, seq=seq
    )
    return LiveProgress(envelope, JobProgress(fraction=0.5), time.monotonic() - age_s)


def test_job_event_ids_round_trip_and_order() -> None:
    assert str(JobEventKey(1, 0)) == "1.0"
    assert str(JobEventKey(1, 0, 1)) == "1.0.1"
    assert JobEventKey.parse("2.7") == JobEventKey(2, 7, 0)
    assert JobEventKey.parse("1.0.1") > JobEventKey.parse("1.0") > START
    assert JobEventKey(2, 0) > JobEventKey(1, 1_000_000_001)  # a retry comes after its attempt
    for bad in ("", "1", "a.b", "1.2.3.4", "-1.2", "1.2;drop"):
        with pytest.raises(BadEventId):
            JobEventKey.parse(bad)


def test_records_sharing_an_event_get_places() -> None:
    # The submission's queued and the claim's running share (1, 0); logs have their own seq.
    records = [
        _log(9, 1, 2),
        _status(2, 1, 0, "running"),
        _status(1, 1, 0, "queued"),
        _status(5, 1, 3, "succeeded"),
    ]
    keyed = keyed_records(records)
    assert [(str(k), r.status or "log") for k, r in keyed] == [
        ("1.0", "queued"),
        ("1.0.1", "running"),
        ("1.2", "log"),
        ("1.3", "succeeded"),
    ]


def test_progress_waits_for_what_came_before_it() -> None:
    mark = {JOB: JobWatermark(JOB, EXPERIMENT, "running", 1, 4)}
    ready, waiting = ready_progress(
        [_progress(1, 3), _progress(1, 5), _progress(1, 6, age_s=60), _progress(1, 2)],
        mark,
        after=JobEventKey(1, 2),
    )
    assert [p.envelope.seq for p in ready] == [3]  # recorded up to 4
    assert [p.envelope.seq for p in waiting] == [5]  # not yet: wait, but not forever
    assert ready_progress([_progress(1, 3, job=OTHER)], mark, None) == ([], [])


def test_progress_is_placed_before_the_next_record_of_its_job() -> None:
    records = [_status(1, 1, 2, "running"), _log(7, 1, 4, job=OTHER), _log(8, 1, 5)]
    merged = _merge_progress(records, [_progress(1, 3)])
    assert [type(item).__name__ for item in merged] == [
        "JobRecord",
        "JobRecord",
        "LiveProgress",
        "JobRecord",
    ]
    assert _merge_progress(records[:1], [_progress(1, 3)])[-1].envelope.seq == 3  # type: ignore[union-attr]


def test_table_cursor_remembers_ids_in_flight() -> None:
    cursor = TableCursor(last=10)
    for row_id in (11, 14, 15):
        cursor.take(row_id, visible_ids={11, 14, 15, 12}, now=1000)
    assert cursor.last == 15 and sorted(cursor.holes) == [13]  # 12 visible: another experiment's
    assert str(cursor) == "15-13@1000"
    assert parse_experiment_cursor(f"T{cursor}") == cursor
    cursor.take(13, visible_ids={13}, now=1001)  # committed at last
    assert cursor.holes == {} and str(cursor) == "15"
    cursor.take(18, visible_ids=set(), now=1000)
    assert cursor.wanted_holes(now=1000 + HOLE_TTL_S - 1) == [16, 17]
    assert cursor.wanted_holes(now=1000 + HOLE_TTL_S + 1) == []  # rolled back, surely
    for bad in ("15", "Tx", "T15-20@1", "T15-3", "X15"):
        with pytest.raises(BadEventId):
            parse_experiment_cursor(bad)


def test_a_table_cursor_keeps_its_size_bounded() -> None:
    cursor = TableCursor(last=0)
    cursor.take(1000, visible_ids=set(), now=1)
    assert len(cursor.holes) == 64 and min(cursor.holes) > 900


def test_hub_wakes_only_the_streams_that_care() -> None:
    hub = LiveHub(broker=None)  # type: ignore[arg-type]
    with hub.subscribe(job_id=JOB) as mine, hub.subscribe(job_id=None) as everything:
        everything.ignored_jobs.add(OTHER)
        hub.publish(
            make_event(JobLog(lines=["x"]), producer="t", job_id=OTHER, attempt=1, seq=1),
            JobLog(lines=["x"]),
        )
        assert not mine.wake.is_set() and not everything.wake.is_set()
        progress = JobProgress(fraction=0.1)
        hub.publish(make_event(progress, producer="t", job_id=JOB, attempt=1, seq=2), progress)
        assert mine.wake.is_set() and everything.wake.is_set()
        assert [p.envelope.seq for p in mine.take_progress()] == [2]
        assert mine.unrecorded({JOB: (1, 1)})  # heard (1, 2), recorded up to (1, 1)
        assert not mine.unrecorded({JOB: (1, 2)})
        assert hub.subscriptions == 2
    assert hub.subscriptions == 0


def test_unrecorded_gives_up_after_a_while() -> None:
    inbox = Subscription(job_id=JOB)
    inbox.live_keys[JOB] = ((1, 9), time.monotonic() - 60)
    assert not inbox.unrecorded({JOB: (1, 1)})


def test_rechecks_come_soon_then_less_often() -> None:
    recheck = _Recheck(poll_interval_s=1.0)
    delays = [recheck.delay(behind=True) for _ in range(6)]
    assert delays[0] < 0.05 and delays == sorted(delays) and delays[-1] <= 0.25
    assert recheck.delay(behind=False) == 1.0
    assert recheck.delay(behind=True) < 0.05
