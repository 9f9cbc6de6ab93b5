import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.fixtures.archives import make_tar
from tests.integration.helpers import create_queue, job_target, submit, wait_for_end, wait_until


def test_hello_succeeds_with_metrics_artifacts_and_logs(
    api: httpx.Client, example_archive: Callable[[str], bytes]
) -> None:
    target = job_target(api, example_archive("hello"))
    response = submit(api, **target, params={"greeting": "bonjour", "count": 4, "scale": "2.5"})
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued"
    assert queued["params"] == {"greeting": "bonjour", "count": "4", "scale": "2.5"}

    job = wait_for_end(api, queued["id"])

    assert job["status"] == "succeeded", job
    assert [h["status"] for h in job["history"]] == ["queued", "running", "succeeded"]
    assert job["exit_code"] == 0
    assert job["mlflow_run_id"]
    assert job["mlflow_run_url"].endswith(f"/runs/{job['mlflow_run_id']}")
    assert any("greeting='bonjour' count=4 scale=2.5" in line for line in job["log_tail"])

    (metric,) = api.get(f"/jobs/{job['id']}/metrics").json()["data"]
    assert metric["key"] == "hello_score"
    assert metric["latest"]["value"] == 10.0
    assert [p["value"] for p in metric["history"]] == [2.5, 5.0, 7.5, 10.0]
    assert [p["step"] for p in metric["history"]] == [0, 1, 2, 3]

    artifacts = {a["path"]: a for a in api.get(f"/jobs/{job['id']}/artifacts").json()["data"]}
    assert {"greeting.txt", "logs/output.log"} <= set(artifacts)
    text = api.get(f"/jobs/{job['id']}/artifacts/greeting.txt")
    assert text.status_code == 200
    assert text.text == "bonjour, world\n" * 4
    assert api.get(artifacts["greeting.txt"]["download_url"]).text == text.text

    logs = api.get(f"/jobs/{job['id']}/logs").text
    assert "step 3: hello_score=10.0" in logs
    assert api.get(f"/jobs/{job['id']}/logs", params={"tail": 1}).text == "done\n"


def test_failing_script_ends_failed_with_its_log_tail(
    api: httpx.Client, scripted_archive: bytes
) -> None:
    response = submit(api, **job_target(api, scripted_archive), params={"code": 3})
    job = wait_for_end(api, response.json()["id"])

    assert job["status"] == "failed"
    assert job["exit_code"] == 3
    assert "exited with status 3" in job["error"]
    assert job["history"][-1]["status"] == "failed"
    assert job["log_tail"][-1] == "about to exit with 3"
    assert "line 29: hi" in job["log_tail"]
    assert api.get(f"/jobs/{job['id']}/logs").text.count("line ") == 30


def test_jobs_are_listed_by_experiment_and_status(
    api: httpx.Client, scripted_archive: bytes
) -> None:
    target = job_target(api, scripted_archive)
    ids = []
    for code in (0, 1, 0):
        response = submit(api, **target, params={"code": code})
        ids.append(response.json()["id"])
    for job_id in ids:
        wait_for_end(api, job_id)

    everything = api.get("/jobs", params={"experiment_id": target["experiment_id"]}).json()
    assert everything["count"] == 3
    succeeded = api.get(
        "/jobs",
        params={"experiment_id": target["experiment_id"], "status": "succeeded", "limit": 1},
    ).json()
    assert succeeded["count"] == 2
    assert len(succeeded["data"]) == 1
    failed = api.get(
        "/jobs", params={"experiment_id": target["experiment_id"], "status": "failed"}
    ).json()
    assert [j["id"] for j in failed["data"]] == [ids[1]]


def _waiting_jobs(api: httpx.Client, queue: str) -> int:
    """Messages ready in the queue's RabbitMQ queue, as the api reads them from the broker."""
    return {q["name"]: q for q in api.get("/queues").json()["data"]}[queue]["waiting_jobs"]


def test_bad_submissions_leave_no_job_and_no_message(
    api: httpx.Client, scripted_archive: bytes
) -> None:
    queue = create_queue(api)  # no worker serves it: whatever is enqueued stays visible
    base: dict[str, Any] = {**job_target(api, scripted_archive), "queue": queue}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"experiment_id": str(uuid.uuid4())}, {"experiment_id"}),
        ({"entrypoint_id": str(uuid.uuid4())}, {"entrypoint_id"}),
        ({"entry_point": "train"}, {"entry_point"}),
        ({"queue": "no-such-queue"}, {"queue"}),
        ({"params": {"code": "three"}}, {"params.code"}),
        ({"params": {"code": 1.5}}, {"params.code"}),
        ({"params": {"colour": "red"}}, {"params.colour"}),
        (
            {"params": {"code": True, "colour": "red", "size": 2}},
            {"params.code", "params.colour", "params.size"},
        ),
        (
            {"experiment_id": str(uuid.uuid4()), "queue": "nope", "params": {"code": "x"}},
            {"experiment_id", "queue", "params.code"},
        ),
        ({"timeout_s": 0}, {"timeout_s"}),
        ({"experiment_id": "not-a-uuid"}, {"experiment_id"}),
    ]
    for change, fields in cases:
        response = submit(api, **{**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert {p["field"] for p in response.json()["problems"]} == fields, change

    assert api.get("/jobs", params={"experiment_id": base["experiment_id"]}).json()["count"] == 0
    assert _waiting_jobs(api, queue) == 0

    # The same path with a valid body does enqueue: the check above can see a message.
    accepted = submit(api, **base, params={"code": 0})
    assert accepted.status_code == 202
    wait_until(lambda: _waiting_jobs(api, queue) == 1, what="the valid job's message")
    assert api.get(f"/jobs/{accepted.json()['id']}").json()["status"] == "queued"


def test_required_parameter_missing_is_named(api: httpx.Client) -> None:
    project = (
        "entry_points:\n  main:\n    parameters:\n      lr: float\n      path_in: {type: path}\n"
        "      link: {type: uri, default: 's3://b/k'}\n    command: 'echo {lr} {path_in} {link}'\n"
    )
    target = job_target(api, make_tar({"MLproject": project}))
    response = submit(api, **target, params={"link": "no scheme here"})
    assert response.status_code == 422
    problems = {p["field"]: p["message"] for p in response.json()["problems"]}
    assert set(problems) == {"params.lr", "params.path_in", "params.link"}
    assert "missing" in problems["params.lr"]
    assert "not a URI" in problems["params.link"]


def test_job_waits_on_a_queue_without_workers(api: httpx.Client, scripted_archive: bytes) -> None:
    target = job_target(api, scripted_archive)
    queue = create_queue(api)
    job = submit(api, **target, queue=queue).json()
    wait_until(lambda: _waiting_jobs(api, queue) == 1, what="the job message to reach its queue")
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "queued"


def test_unknown_job_is_404(api: httpx.Client) -> None:
    for path in ("", "/metrics", "/artifacts", "/logs"):
        assert api.get(f"/jobs/{uuid.uuid4()}{path}").status_code == 404
