import httpx

from tests.fixtures.stack import Stack
from tests.integration.helpers import create_queue, job_target, submit, unique, wait_until


def test_healthz_and_readyz_answer(stack: Stack) -> None:
    assert httpx.get(f"{stack.config.api_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.config.api_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "object_store": "ok"}


def test_default_queues_exist_and_cpu_has_a_live_worker(api: httpx.Client) -> None:
    queues = {q["name"]: q for q in api.get("/queues").json()["data"]}
    assert {"cpu", "gpu"} <= set(queues)
    assert queues["cpu"]["live_workers"] == 1
    assert queues["gpu"]["live_workers"] == 0


def test_a_new_queue_is_listed_without_workers(api: httpx.Client) -> None:
    name = create_queue(api)
    listed = {q["name"]: q for q in api.get("/queues").json()["data"]}
    assert listed[name]["live_workers"] == 0
    assert listed[name]["waiting_jobs"] == 0
    again = api.post("/queues", json={"name": name})
    assert again.status_code == 409
    # Tests remove the queues they made: each is two quorum queues on the broker.
    assert api.delete(f"/queues/{name}").status_code == 204
    assert api.get(f"/queues/{name}").status_code == 404
    assert api.delete(f"/queues/{name}").status_code == 404


def test_a_queue_jobs_used_is_not_removed(api: httpx.Client, scripted_archive: bytes) -> None:
    name = create_queue(api)
    target = job_target(api, scripted_archive)
    assert submit(api, **target, params={}, queue=name).status_code == 202
    refused = api.delete(f"/queues/{name}")
    assert refused.status_code == 409 and "1 job(s)" in refused.json()["detail"]


def test_bad_queue_name_is_refused(api: httpx.Client) -> None:
    response = api.post("/queues", json={"name": "Not A Name!"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["problems"][0]["field"] == "name"


def test_swagger_ui_and_openapi_are_served(stack: Stack) -> None:
    assert httpx.get(f"{stack.config.api_url}/docs").status_code == 200
    spec = httpx.get(f"{stack.config.api_url}/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"]
    assert "/api/v1/entrypoints" in spec["paths"]


def test_a_queues_maxima_bound_the_limits_a_job_asks_for(
    api: httpx.Client, scripted_archive: bytes
) -> None:
    name = unique("bounded")
    created = api.post(
        "/queues", json={"name": name, "max_limits": {"memory_bytes": "1 GiB", "processes": 64}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["max_limits"] == {"memory_bytes": 1024**3, "processes": 64}
    target = job_target(api, scripted_archive)
    before = api.get("/jobs", params={"experiment_id": target["experiment_id"]}).json()["count"]
    over = submit(
        api,
        **target,
        params={},
        queue=name,
        limits={"memory_bytes": "4 GiB", "processes": 1000, "cpu_seconds": 30},
    )
    assert over.status_code == 422
    assert {(p["field"], p["message"]) for p in over.json()["problems"]} == {
        ("limits.memory_bytes", "4 GiB is over this queue's maximum 1 GiB"),
        ("limits.processes", "1000 is over this queue's maximum 64"),
    }
    unknown = submit(api, **target, params={}, queue=name, limits={"memory": "1 GiB"})
    assert unknown.status_code == 422 and "memory" in unknown.text
    after = api.get("/jobs", params={"experiment_id": target["experiment_id"]}).json()["count"]
    assert after == before  # nothing left behind
    within = submit(
        api, **target, params={}, queue=name, limits={"memory_bytes": "512 MiB", "cpu_seconds": 30}
    )
    assert within.status_code == 202, within.text
    assert within.json()["limits"] == {"memory_bytes": 512 * 1024**2, "cpu_seconds": 30}


def test_a_queue_shows_its_live_workers_and_what_their_sandboxes_enforce(
    api: httpx.Client,
) -> None:
    def reported() -> bool:
        workers = api.get("/queues/cpu").json()["workers"]
        return len(workers) == 1 and workers[0]["isolation"] is not None

    wait_until(reported, 30, "the CPU worker's isolation report")
    (worker,) = api.get("/queues/cpu").json()["workers"]
    isolation = worker["isolation"]
    assert isolation["sandbox_bwrap"] == "yes" and isolation["sandbox_fork"] == "yes"
    assert isolation["network"] == "own network namespace (loopback only)"
    assert "memory" in isolation["memory"] and worker["slots"] >= 1
    assert api.get("/queues/gpu").json()["workers"] == []
