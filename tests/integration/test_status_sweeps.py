"""Sweeps: a grid submitted as child jobs, all or none; their table and figure once finished."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.helpers import job_target

SVG = "{http://www.w3.org/2000/svg}"


def _wait_finished(api: httpx.Client, sweep_id: str, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        sweep = api.get(f"/sweeps/{sweep_id}", params={"metrics": "false"}).json()
        if sweep["finished"]:
            return api.get(f"/sweeps/{sweep_id}").json()
        assert time.monotonic() < deadline, f"sweep still {sweep['status']}: {sweep['counts']}"
        time.sleep(0.5)


@dataclass
class HelloSweeps:
    """A new experiment and the hello example uploaded: what the sweeps of a test are of."""

    api: httpx.Client
    target: dict[str, str]

    @property
    def experiment_id(self) -> str:
        return self.target["experiment_id"]

    def post(self, **body: Any) -> httpx.Response:
        """Ask for a sweep of hello in the experiment; ``body`` is the rest of the request."""
        return self.api.post("/sweeps", json={**self.target, **body})


@pytest.fixture
def hello(api: httpx.Client, example_archive: Callable[[str], bytes]) -> HelloSweeps:
    return HelloSweeps(api, job_target(api, example_archive("hello")))


def test_a_grid_of_six_points_ends_with_its_table_and_figure(
    api: httpx.Client, hello: HelloSweeps
) -> None:
    response = hello.post(
        name="hello-grid",
        params={"greeting": "sweep"},
        grid={"count": [2, 3, 4], "scale": [1.0, 2.5]},
        metrics=["hello_score"],
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert len(created["points"]) == 6
    assert created["status"] in ("queued", "running") and not created["finished"]
    assert created["figure_url"] is None
    assert api.get(f"/sweeps/{created['id']}/figure.svg").status_code == 409
    jobs = api.get("/jobs", params={"experiment_id": hello.experiment_id}).json()
    assert {j["id"] for j in jobs["data"]} == {p["job_id"] for p in created["points"]}
    assert {j["params"]["greeting"] for j in jobs["data"]} == {"sweep"}

    sweep = _wait_finished(api, created["id"])
    assert sweep["status"] == "succeeded" and sweep["counts"] == {"succeeded": 6}
    assert len(sweep["table"]) == 6
    for row in sweep["table"]:
        expected = row["values"]["scale"] * row["values"]["count"]
        assert row["metrics"]["hello_score"]["mean"] == pytest.approx(expected)
        assert row["metrics"]["hello_score"]["n"] == 1
        assert row["statuses"] == {"succeeded": 1}
    for point in sweep["points"]:
        assert point["metrics"] == {
            "hello_score": point["values"]["scale"] * point["values"]["count"]
        }
    listed = api.get("/sweeps", params={"experiment_id": hello.experiment_id}).json()
    assert [s["id"] for s in listed["data"]] == [sweep["id"]]
    assert listed["data"][0]["status"] == "succeeded"

    figure = api.get(sweep["figure_url"])
    assert figure.status_code == 200
    assert figure.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(figure.text)
    assert "hello_score against count" in root.find(f"{SVG}title").text  # type: ignore[union-attr]
    assert len(root.findall(f".//{SVG}polyline")) == 2  # one line per scale
    assert len(root.findall(f".//{SVG}circle")) == 6
    by_scale = ET.fromstring(
        api.get(f"/sweeps/{sweep['id']}/figure.svg", params={"x": "scale"}).text
    )
    assert len(by_scale.findall(f".//{SVG}polyline")) == 3  # one line per count
    bad = api.get(f"/sweeps/{sweep['id']}/figure.svg", params={"metric": "nope", "x": "colour"})
    assert bad.status_code == 422


def test_a_bad_grid_or_point_creates_nothing_and_names_every_problem(
    api: httpx.Client, hello: HelloSweeps
) -> None:
    response = hello.post(
        params={"scale": "big"},
        grid={"count": [2, "many", 4], "colour": ["red"]},
        seeds=[1, 1],
    )
    assert response.status_code == 422, response.text
    problems = {p["field"]: p["message"] for p in response.json()["problems"]}
    assert set(problems) == {
        "seeds",  # they repeat
        "seeds.0",  # hello declares no parameter 'seed'
        "params.scale",  # not a float, in every point: said once
        "grid.count.1",  # 'many' is not an int
        "grid.colour.0",  # not a parameter of the entry point
    }, problems
    assert "not a float" in problems["params.scale"]
    assert api.get("/jobs", params={"experiment_id": hello.experiment_id}).json()["count"] == 0
    assert api.get("/sweeps", params={"experiment_id": hello.experiment_id}).json()["count"] == 0

    empty = hello.post(grid={"count": []})
    assert empty.status_code == 422
    assert {p["field"] for p in empty.json()["problems"]} == {"grid.count"}

    too_big = hello.post(
        grid={"count": list(range(30)), "scale": [float(i) for i in range(30)]},
    )
    assert too_big.status_code == 422
    assert "at most 500" in too_big.json()["problems"][0]["message"]
