import uuid

import httpx

from tests.integration.helpers import create_experiment, unique


def test_create_get_and_list_experiments(api: httpx.Client) -> None:
    prefix = unique("listing")
    created = [create_experiment(api, f"{prefix}-{i}") for i in range(3)]
    fetched = api.get(f"/experiments/{created[0]['id']}").json()
    assert fetched["name"] == f"{prefix}-0"
    assert fetched["mlflow_experiment_id"]
    assert fetched["mlflow_url"].endswith(f"/#/experiments/{fetched['mlflow_experiment_id']}")

    page = api.get("/experiments", params={"limit": 2, "offset": 0}).json()
    assert len(page["data"]) == 2
    assert page["count"] >= 3  # the total of matches, not the page length
    second = api.get("/experiments", params={"limit": 2, "offset": 2}).json()
    assert {e["id"] for e in page["data"]}.isdisjoint({e["id"] for e in second["data"]})


def test_reused_name_is_a_conflict(api: httpx.Client) -> None:
    experiment = create_experiment(api)
    again = api.post("/experiments", json={"name": experiment["name"]})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert experiment["name"] in again.json()["detail"]


def test_unknown_experiment_is_404(api: httpx.Client) -> None:
    response = api.get(f"/experiments/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_bad_pagination_is_422(api: httpx.Client) -> None:
    response = api.get("/experiments", params={"limit": 0, "offset": -1})
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert fields == {"limit", "offset"}
