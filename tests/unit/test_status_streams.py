"""Event ids, cursors and the ordering rules of the server-sent event streams."""

import uuid
from datetime import UTC, datetime

import pytest

from tests.fixtures.events import SIGNERS, FixedHolders
from theodolite.events import JobLog, JobProgress, make_event
from theodolite_api.streams.ids import (
    HOLE_TTL_S,
    START,
    BadEventId,
    JobEventKey,
    TableCursor,
    parse_experiment_cursor,
)
from theodolite_api.streams.live import LiveHub
from theodolite_api.streams.ordering import (
    JobOrder,
    LogItem,
    ProgressItem,
    StatusItem,
    chained,
)

JOB = uuid.uuid4()
OTHER = uuid.uuid4()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _status(
    tid: int, attempt: int, seq: int, status: str, before: str | None, job: uuid.UUID = JOB
) -> StatusItem:
    return StatusItem(job, attempt, seq, tid, before, status, AT)


def _log(attempt: int, seq: int, job: uuid.UUID = JOB) -> LogItem:
    return LogItem(job, attempt, seq, (f"line {seq}",))


def _progress(attempt: int, seq: int, job: uuid.UUID = JOB) -> ProgressItem:
    envelope = make_event(
        JobProgress(fraction=0.5), producer="t", job_id=job, attempt=attempt, seq=seq
    )
    return ProgressItem(envelope, JobProgress(fraction=0.5))


def _given(order: JobOrder) -> list[tuple[str, str]]:
    return [
        (str(key), item.status if isinstance(item, StatusItem) else type(item).__name__)
        for key, item in order.ready()
    ]


def _recorded(*statuses: StatusItem, after: JobEventKey | None = None) -> JobOrder:
    """An order given ``statuses`` as a replay reads them: chained, in the record's order."""
    order = JobOrder(after=after)
    for item in chained(list(statuses)):
        order.add(item)
    return order


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
    order = _recorded(
        _status(1, 1, 0, "queued", None),
        _status(2, 1, 0, "running", None),
        _status(5, 1, 3, "succeeded", None),
    )
    order.add(_log(1, 2))
    assert _given(order) == [
        ("1.0", "queued"),
        ("1.0.1", "running"),
        ("1.2", "LogItem"),
        ("1.3", "succeeded"),
    ]


def test_live_events_from_two_publishers_are_put_in_the_record_order() -> None:
    order = JobOrder()
    order.add(_status(1, 1, 0, "queued", None))
    assert _given(order) == [("1.0", "queued")]
    # The worker's events overtake the relay's announcement of the claim: they wait for it.
    order.add(_log(1, 2))
    order.add(_progress(1, 3))
    assert _given(order) == []
    order.add(_status(2, 1, 0, "running", "queued"))
    assert _given(order) == [("1.0.1", "running"), ("1.2", "LogItem"), ("1.3", "ProgressItem")]
    # A transition waits for the one before it (two relays may publish out of order).
    order.add(_status(9, 2, 0, "running", "queued"))
    order.add(_status(7, 1, 5, "queued", "running"))
    assert _given(order) == [("1.5", "queued"), ("2.0", "running")]
    assert order.status == "running" and order.waiting == 0


def test_repeats_and_what_the_client_had_are_not_given_again() -> None:
    order = _recorded(
        _status(1, 1, 0, "queued", None),
        _status(2, 1, 0, "running", None),
        after=JobEventKey.parse("1.2"),
    )
    order.add(_log(1, 2))
    order.add(_log(1, 4))
    assert _given(order) == [("1.4", "LogItem")]  # the rest the client had (Last-Event-ID)
    order.add(_status(2, 1, 0, "running", "queued"))  # announced again: a repeat
    order.add(_log(1, 4))
    order.add(_log(1, 3))  # came after a later one: passed already
    assert _given(order) == []
    assert order.waiting == 0


def test_a_replay_page_gives_nothing_past_its_end() -> None:
    order = _recorded(_status(1, 1, 0, "queued", None), _status(2, 1, 0, "running", None))
    order.add(_log(1, 1))
    order.add(_log(1, 9))  # heard live; chunks between are not read yet
    assert [str(k) for k, _ in order.ready(upto=(1, 1))] == ["1.0", "1.0.1", "1.1"]
    order.add(_log(1, 5))
    assert [str(k) for k, _ in order.ready()] == ["1.5", "1.9"]


def test_progress_of_an_attempt_given_up_is_dropped() -> None:
    order = _recorded(
        _status(1, 1, 0, "queued", None),
        _status(2, 1, 0, "running", None),
        _status(3, 1, 1_000_000_000, "lost", None),
        _status(4, 1, 1_000_000_001, "queued", None),
    )
    order.ready()
    order.add(_progress(1, 7))  # its worker was thought lost, and is late
    order.add(_progress(2, 2))  # the next attempt, before its claim was announced
    assert _given(order) == []
    order.add(_status(5, 2, 0, "running", "queued"))
    assert _given(order) == [("2.0", "running"), ("2.2", "ProgressItem")]


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
    hub = LiveHub(broker=None, signers=SIGNERS, holders=FixedHolders({}))
    with hub.subscribe(job_id=JOB) as mine, hub.subscribe(job_id=None) as everything:
        hub.publish(
            make_event(JobLog(lines=["x"]), producer="t", job_id=OTHER, attempt=1, seq=1),
            JobLog(lines=["x"]),
        )
        # Another job's log lines: for its own streams only (experiment streams carry none).
        assert not mine.wake.is_set() and not everything.wake.is_set()
        progress = JobProgress(fraction=0.1)
        hub.publish(make_event(progress, producer="t", job_id=JOB, attempt=1, seq=2), progress)
        assert mine.wake.is_set() and everything.wake.is_set()
        assert [envelope.seq for envelope, _ in mine.take()] == [2]
        assert [envelope.seq for envelope, _ in everything.take()] == [2]
        assert hub.subscriptions == 2
    assert hub.subscriptions == 0


def test_a_reconnected_live_queue_makes_every_stream_read_again() -> None:
    hub = LiveHub(broker=None, signers=SIGNERS, holders=FixedHolders({}))
    with hub.subscribe(job_id=JOB) as mine:
        hub._on_reconnect()
        assert mine.wake.is_set() and mine.take_resync() and not mine.take_resync()
