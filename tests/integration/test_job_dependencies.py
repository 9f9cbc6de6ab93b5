"""Jobs that wait for others (``depends_on``), through the HTTP API on the real stack: a job waits
until its dependencies have succeeded, is skipped (never run) when one does not, and is
cancelled with them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar, mlproject
from tests.integration.helpers import (
    create_experiment,
    submit,
    upload_ok,
    wait_for_end,
    wait_until,
)

PAUSING = mlproject(
    "pausing", "python pause.py {seconds} {code}", seconds=("float", 0.0), code=("int", 0)
)
PAUSE = (
    "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('done')\nsys.exit(int(sys.argv[2]))\n"
)


@pytest.fixture
def pausing(api: httpx.Client) -> dict[str, str]:
    """An experiment and an entry point that sleeps ``seconds`` and exits with ``code``."""
    archive = upload_ok(api, make_tar({"MLproject": PAUSING, "pause.py": PAUSE}))
    return {"experiment_id": create_experiment(api)["id"], "entrypoint_id": archive["id"]}


def _job(api: httpx.Client, target: dict[str, str], **body: Any) -> dict[str, Any]:
    response = submit(api, **target, **body)
    assert response.status_code == 202, response.text
    return response.json()


def _statuses(job: dict[str, Any]) -> list[str]:
    return [step["status"] for step in job["history"]]


def test_a_job_waits_for_its_dependencies_then_runs(
    api: httpx.Client, pausing: dict[str, str]
) -> None:
    first = _job(api, pausing, params={"seconds": 2})
    # In another experiment the caller may see: dependencies cross experiments.
    elsewhere = {**pausing, "experiment_id": create_experiment(api)["id"]}
    second = _job(api, elsewhere, depends_on=[first["id"]])
    assert second["status"] == "waiting" and second["depends_on"] == [first["id"]]
    assert api.get(f"/jobs/{second['id']}").json()["status"] == "waiting"
    ended = wait_for_end(api, second["id"], timeout_s=120)
    assert ended["status"] == "succeeded"
    assert _statuses(ended) == ["waiting", "queued", "running", "succeeded"]
    done = wait_for_end(api, first["id"])
    first_end = next(s["at"] for s in done["history"] if s["status"] == "succeeded")
    queued_at = next(s["at"] for s in ended["history"] if s["status"] == "queued")
    assert queued_at >= first_end
    # A dependency that succeeded already: nothing to wait for.
    third = _job(api, pausing, depends_on=[first["id"], second["id"]])
    assert third["status"] == "queued"
    assert wait_for_end(api, third["id"])["status"] == "succeeded"


def test_a_dependency_that_fails_skips_what_waits_on_it_which_never_runs(
    api: httpx.Client, pausing: dict[str, str]
) -> None:
    failing = _job(api, pausing, params={"seconds": 1, "code": 3})
    child = _job(api, pausing, depends_on=[failing["id"]])
    grandchild = _job(api, pausing, depends_on=[child["id"]])
    assert wait_for_end(api, failing["id"])["status"] == "failed"
    skipped = wait_for_end(api, child["id"], timeout_s=60)
    assert (skipped["status"], skipped["error"]) == (
        "skipped",
        f"dependency {failing['id']} ended failed",
    )
    further = wait_for_end(api, grandchild["id"], timeout_s=60)
    assert further["status"] == "skipped" and child["id"] in further["error"]
    for job in (skipped, further):
        assert _statuses(job) == ["waiting", "skipped"]  # never queued, never ran
        assert job["mlflow_run_id"] is None
    # Submitted after its dependency failed: skipped at once.
    late = _job(api, pausing, depends_on=[failing["id"]])
    assert late["status"] == "skipped" and failing["id"] in late["error"]


def test_cancelling_a_job_cancels_the_jobs_waiting_on_it(
    api: httpx.Client, pausing: dict[str, str]
) -> None:
    long = _job(api, pausing, params={"seconds": 60})
    waiting = _job(api, pausing, depends_on=[long["id"]])
    behind = _job(api, pausing, depends_on=[waiting["id"]])
    wait_until(lambda: api.get(f"/jobs/{long['id']}").json()["status"] == "running", 60)
    assert api.post(f"/jobs/{long['id']}/cancel").status_code == 202
    for job in (waiting, behind):
        now = api.get(f"/jobs/{job['id']}").json()
        assert now["status"] == "cancelled", now  # at once, not when the dependency ends
        assert "dependency" in now["history"][-1]["detail"]
    assert wait_for_end(api, long["id"], timeout_s=60)["status"] == "cancelled"


def test_unknown_and_repeated_dependencies_are_refused_and_nothing_is_created(
    api: httpx.Client, pausing: dict[str, str]
) -> None:
    real = _job(api, pausing)
    missing = str(uuid.uuid4())
    before = api.get("/jobs", params={"experiment_id": pausing["experiment_id"]}).json()["count"]
    refused = submit(api, **pausing, depends_on=[missing, real["id"], real["id"]])
    assert refused.status_code == 422
    assert {(p["field"], p["message"]) for p in refused.json()["problems"]} == {
        ("depends_on.0", f"no such job {missing}"),
        ("depends_on.2", f"{real['id']} named twice"),
    }
    bad_id = submit(api, **pausing, depends_on=["not-a-job-id"])
    assert bad_id.status_code == 422
    after = api.get("/jobs", params={"experiment_id": pausing["experiment_id"]}).json()["count"]
    assert after == before
