import uuid

import pytest

from tests.fixtures.events import job_submitted
from theodolite.events import (
    EventType,
    JobFailed,
    UndecodableEvent,
    decode_event,
    make_event,
)


def test_event_round_trip_keeps_type_order_and_payload() -> None:
    job_id = uuid.uuid4()
    payload = job_submitted(
        mlflow_experiment_id="3", archive_sha256="ab" * 32, params={"eps": "0.1"}
    )
    event = make_event(payload, producer="api", job_id=job_id, attempt=1, seq=0)
    envelope, decoded = decode_event(event.to_bytes())
    assert envelope.type is EventType.JOB_SUBMITTED
    assert (envelope.job_id, envelope.attempt, envelope.seq) == (job_id, 1, 0)
    assert decoded == payload


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not a Theodolite event envelope"),
        (b'{"type": "job.exploded", "producer": "x", "payload": {}}', "not a Theodolite"),
        (
            make_event(JobFailed(reason="x"), producer="w")
            .model_copy(update={"version": 9})
            .to_bytes(),
            "unsupported version 9",
        ),
        (
            b'{"type": "job.failed", "producer": "w", "payload": {"exit_code": "x"}}',
            "bad job.failed payload",
        ),
    ],
)
def test_bad_messages_are_undecodable(body: bytes, message: str) -> None:
    with pytest.raises(UndecodableEvent, match=message):
        decode_event(body)
