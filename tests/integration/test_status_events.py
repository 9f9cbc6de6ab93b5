"""Server-sent events: a job's stream and an experiment's, resumed with Last-Event-ID, served by
either of two api replicas."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar, mlproject
from tests.fixtures.stack import Stack, api_replica
from tests.integration.helpers import TERMINAL, create_experiment, submit, upload_ok, wait_for_end

SLOW_PROJECT = mlproject(
    "slow", "python slow.py {lines} {pause}", lines=("int", 12), pause=("float", 0.25)
)
SLOW_SCRIPT = """\
import json, sys, time
lines, pause = int(sys.argv[1]), float(sys.argv[2])
for i in range(lines):
    print(f"line {i}", flush=True)
    progress = {"fraction": (i + 1) / lines, "step": "counting", "message": f"{i + 1}/{lines}"}
    print("::theodolite-progress:: " + json.dumps(progress), flush=True)
    time.sleep(pause)
print("done", flush=True)
"""


@dataclass
class Event:
    event: str
    id: str | None
    data: dict[str, Any]


def read_events(
    base_url: str,
    path: str,
    *,
    auth: dict[str, str],
    last_event_id: str | None = None,
    stop: Any = None,
    timeout_s: float = 120,
) -> list[Event]:
    """Events of one connection, until the server ends it or ``stop(events)`` says enough."""
    headers = {**auth, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    fields: dict[str, Any] = {"data": []}
    with (
        httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"no end after {timeout_s} s: {events}"
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    fields["data"].append(value)
                else:
                    fields[name] = value
                continue
            if fields["data"]:
                events.append(
                    Event(
                        fields.get("event", "message"),
                        fields.get("id"),
                        json.loads("\n".join(fields["data"])),
                    )
                )
            fields = {"data": []}
            if stop is not None and stop(events):
                break
    return events


def _key(event_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in event_id.split("."))


@pytest.fixture(scope="module")
def second_api(stack: Stack) -> Iterator[str]:
    """Another api replica on the same database and broker."""
    with api_replica(stack, "api-replica-2") as url:
        yield url


@pytest.fixture
def slow_entrypoint(api: httpx.Client) -> dict[str, Any]:
    return upload_ok(api, make_tar({"MLproject": SLOW_PROJECT, "slow.py": SLOW_SCRIPT}))


def test_reconnecting_with_last_event_id_misses_and_repeats_nothing(
    api: httpx.Client, stack: Stack, second_api: str, slow_entrypoint: dict[str, Any]
) -> None:
    experiment = create_experiment(api)
    job = submit(
        api,
        experiment_id=experiment["id"],
        entrypoint_id=slow_entrypoint["id"],
        params={"lines": 16, "pause": 0.3},
    ).json()
    path = f"/jobs/{job['id']}/events"

    # Connected to one replica: leave in the middle of the job.
    first = read_events(
        stack.api,
        path,
        auth=stack.headers,
        stop=lambda events: sum(e.event == "log" for e in events) >= 3,
    )
    assert any(e.event == "progress" for e in first) or len(first) >= 3
    time.sleep(1.5)  # the job goes on meanwhile
    # Back, to the other replica, from the last id received.
    second = read_events(second_api, path, auth=stack.headers, last_event_id=first[-1].id)
    assert second[-1].event == "end" and second[-1].id is None
    assert wait_for_end(api, job["id"])["status"] == "succeeded"

    received = [e for e in first + second if e.id is not None]
    keys = [_key(e.id) for e in received]  # type: ignore[arg-type]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), "in order, each once"

    # Everything recorded, as a full replay after the end shows it (progress is live only).
    replay = read_events(stack.api, path, auth=stack.headers)
    recorded = [(e.id, e.event, e.data) for e in replay if e.event in ("status", "log")]
    assert [(e.id, e.event, e.data) for e in received if e.event in ("status", "log")] == recorded
    statuses = [e.data["status"] for e in replay if e.event == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    lines = [line for e in replay if e.event == "log" for line in e.data["lines"]]
    assert lines == api.get(f"/jobs/{job['id']}/logs").text.splitlines()
    numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert numbers == sorted(numbers) and numbers
    progress = [e for e in first + second if e.event == "progress"]
    assert progress and all(e.data["step"] == "counting" for e in progress)
    assert progress[-1].data["fraction"] == 1.0 or len(progress) < 16

    # A stream resumed after the terminal event only says it ended.
    tail = read_events(second_api, path, auth=stack.headers, last_event_id=received[-1].id)
    assert [(e.event, e.data["status"]) for e in tail] == [("end", "succeeded")]


def test_experiment_stream_resumes_across_jobs(
    api: httpx.Client, stack: Stack, second_api: str, slow_entrypoint: dict[str, Any]
) -> None:
    experiment = create_experiment(api)
    path = f"/experiments/{experiment['id']}/events"
    ids = [
        submit(
            api,
            experiment_id=experiment["id"],
            entrypoint_id=slow_entrypoint["id"],
            params={"lines": 10, "pause": 0.3},
        ).json()["id"]
        for _ in range(2)
    ]

    def running_both(events: list[Event]) -> bool:
        return {e.data["job_id"] for e in events if e.data.get("status") == "running"} == set(ids)

    first = read_events(second_api, path, auth=stack.headers, stop=running_both, timeout_s=60)

    def both_ended(events: list[Event]) -> bool:
        ended = {e.data["job_id"] for e in events if e.data.get("status") in TERMINAL}
        return ended == set(ids)

    last_id = [e.id for e in first if e.id is not None][-1]
    second = read_events(
        stack.api,
        path,
        auth=stack.headers,
        last_event_id=last_id,
        stop=lambda events: both_ended(first + events),  # one may have ended already
        timeout_s=60,
    )

    status_events = [e for e in first + second if e.event == "status"]
    assert len({e.id for e in status_events}) == len(status_events)
    assert all(e.event in ("status", "progress") for e in first + second)
    for job_id in ids:
        job = wait_for_end(api, job_id)
        streamed = [e.data["status"] for e in status_events if e.data["job_id"] == job_id]
        assert (
            streamed == [h["status"] for h in job["history"]] == ["queued", "running", "succeeded"]
        )
    assert {e.data["job_id"] for e in first + second} == set(ids)


def test_stream_errors(api: httpx.Client, scripted_archive: bytes) -> None:
    experiment = create_experiment(api)
    entrypoint = upload_ok(api, scripted_archive)
    job = submit(api, experiment_id=experiment["id"], entrypoint_id=entrypoint["id"]).json()
    wait_for_end(api, job["id"])
    assert api.get(f"/jobs/{uuid.uuid4()}/events").status_code == 404
    assert api.get(f"/experiments/{uuid.uuid4()}/events").status_code == 404
    bad = api.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["field"] == "Last-Event-ID"
    bad = api.get(f"/experiments/{experiment['id']}/events", params={"last_event_id": "1.2"})
    assert bad.status_code == 400


def test_an_experiment_stream_tells_of_its_pipelines_start_and_end(
    api: httpx.Client, stack: Stack, slow_entrypoint: dict[str, Any]
) -> None:
    experiment = create_experiment(api)
    path = f"/experiments/{experiment['id']}/events"
    heard: list[Event] = []

    def pipeline_ended(events: list[Event]) -> bool:
        return any(e.event == "pipeline" and e.data["status"] in TERMINAL for e in events)

    reader = threading.Thread(
        target=lambda: heard.extend(
            read_events(stack.api, path, auth=stack.headers, stop=pipeline_ended, timeout_s=120)
        )
    )
    reader.start()
    time.sleep(1.0)  # connected: the pipeline's start is live only
    stage = {"entrypoint_id": slow_entrypoint["id"], "params": {"lines": 2, "pause": 0.1}}
    created = api.post(
        "/pipelines",
        json={"experiment_id": experiment["id"], "name": "streamed", "stages": {"only": stage}},
    )
    assert created.status_code == 202, created.text
    reader.join(130)
    pipeline_events = [e for e in heard if e.event == "pipeline"]
    assert [(e.data["from_status"], e.data["status"]) for e in pipeline_events] == [
        (None, "running"),
        ("running", "succeeded"),
    ]
    assert {e.data["pipeline_id"] for e in pipeline_events} == {created.json()["id"]}
    assert pipeline_events[-1].data["stages"] == {"only": "succeeded"}
    assert all(e.id is None for e in pipeline_events)  # live only: no cursor position
    job_statuses = [e.data["status"] for e in heard if e.event == "status"]
    assert job_statuses == ["queued", "running", "succeeded"]
