"""What a service's log says: JSON lines (text on a terminal, or when told), every line of a job's
handling in the worker carrying its job_id, attempt and worker_id, every line of a request's
handling in the api its request_id (the one echoed back in X-Request-ID)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.events import WORKER_SECRET, job_submitted_event
from tests.fixtures.job_runs import echo_runner
from tests.unit.test_worker_consumers import FakeClaims, RecordingBroker
from theodolite import topology
from theodolite.observability.context import bound
from theodolite.observability.logs import LogFormat, LogSettings, configure_logging
from theodolite.web.observed import REQUEST_ID_HEADER
from theodolite_api.app import create_app
from theodolite_api.settings import ApiSettings
from theodolite_worker.consumers import JobConsumer
from theodolite_worker.state import WorkerState


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure_logging`` replaces the root's handlers (pytest's among them): put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_jobs_lines_carry_its_job_attempt_and_worker(
    restore_logging: None, tmp_path: Path
) -> None:
    stream = io.StringIO()  # not a terminal: JSON
    configure_logging(LogSettings(), service="worker", static={"worker_id": "w7"}, stream=stream)
    logging.getLogger("elsewhere").info("before any job")
    envelope = job_submitted_event(queue="cpu")
    async with RecordingBroker() as broker:
        # Where the job's events go (unread here): a publish no queue takes is refused.
        await broker.declare_event_queue(topology.API_EVENTS_QUEUE, topology.API_EVENTS_BINDINGS)
        jobs = JobConsumer(
            broker=broker,
            queue="cpu",
            slots=1,
            worker_id="w7",
            state=WorkerState(),
            claims=FakeClaims(),  # type: ignore[arg-type]
            runner=echo_runner(tmp_path),
        )
        await jobs.subscribe()
        await broker.publish(topology.JOBS_EXCHANGE.name, "cpu", envelope)
        await broker.drain(timeout_s=60)
        await jobs.stop(grace_s=5)
    lines = _lines(stream)
    first = lines[0]
    assert first["message"] == "before any job" and first["service"] == "worker"
    assert first["worker_id"] == "w7" and "job_id" not in first
    about_the_job = [line for line in lines if str(envelope.job_id) in str(line["message"])]
    assert len(about_the_job) >= 2  # "starting", "done"
    runner_lines = [line for line in lines if line["logger"] == "theodolite_worker.execution"]
    assert runner_lines  # the job's process started (logged by the runner, not naming the job)
    for line in about_the_job + runner_lines:
        assert (line["job_id"], line["attempt"], line["worker_id"]) == (
            str(envelope.job_id),
            "1",
            "w7",
        ), line
        assert {"time", "level", "logger"} <= line.keys()


async def test_a_requests_lines_carry_its_request_id(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format=LogFormat.JSON), service="api", stream=stream)
    app = create_app(ApiSettings(worker_secret=SecretStr(WORKER_SECRET)))

    async def handled() -> dict[str, str]:
        logging.getLogger("theodolite_api.somewhere").warning("handling it")
        return {}

    app.add_api_route("/test/logged", handled)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        given = await http.get("/test/logged", headers={REQUEST_ID_HEADER: "abc-123"})
        made = await http.get("/test/logged")
    assert given.headers[REQUEST_ID_HEADER] == "abc-123"
    lines = [line for line in _lines(stream) if line["logger"] == "theodolite_api.somewhere"]
    assert [line["request_id"] for line in lines] == ["abc-123", made.headers[REQUEST_ID_HEADER]]
    assert all(line["message"] == "handling it" and line["level"] == "WARNING" for line in lines)


def test_text_on_a_terminal_json_elsewhere_or_as_told(restore_logging: None) -> None:
    log = logging.getLogger("theodolite.test")
    job_id = uuid.uuid4()
    outputs = {}
    for name, settings, stream in [
        ("auto, terminal", LogSettings(), Terminal()),
        ("auto, file", LogSettings(), io.StringIO()),
        ("json, terminal", LogSettings(format=LogFormat.JSON), Terminal()),
        ("text, file", LogSettings(format=LogFormat.TEXT), io.StringIO()),
    ]:
        configure_logging(settings, service="api", stream=stream)
        with bound(job_id=job_id, attempt=2):
            log.info("hello")
        outputs[name] = stream.getvalue().strip()
    for name in ("auto, terminal", "text, file"):
        assert outputs[name].endswith(f"INFO theodolite.test hello [job_id={job_id} attempt=2]")
    for name in ("auto, file", "json, terminal"):
        line = json.loads(outputs[name])
        assert (line["message"], line["job_id"], line["attempt"]) == ("hello", str(job_id), "2")


def test_the_level_is_a_setting(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(level="warning"), service="api", stream=stream)
    logging.getLogger("theodolite.test").info("quiet")
    logging.getLogger("theodolite.test").warning("loud")
    assert [line["message"] for line in _lines(stream)] == ["loud"]
