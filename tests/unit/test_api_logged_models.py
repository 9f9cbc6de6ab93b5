"""The models a run logged, as the api reads them from MLflow's REST api (a fake MLflow)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from theodolite.settings import MlflowSettings
from theodolite_api.clients.mlflow import MlflowReader

RUN = "0123456789abcdef"


def _reader(search: Callable[[dict[str, object]], httpx.Response]) -> MlflowReader:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/2.0/mlflow/runs/get":
            return httpx.Response(200, json={"run": {"info": {"experiment_id": "7"}}})
        assert request.url.path == "/api/2.0/mlflow/logged-models/search"
        return search(json.loads(request.content))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MlflowReader(MlflowSettings(tracking_uri="http://mlflow"), http)


def _model(model_id: str, name: str, run: str = RUN) -> dict[str, object]:
    return {"info": {"model_id": model_id, "name": name, "source_run_id": run}}


async def test_every_page_of_the_runs_models_by_name() -> None:
    bodies: list[dict[str, object]] = []

    def search(body: dict[str, object]) -> httpx.Response:
        bodies.append(body)
        if "page_token" not in body:
            page = {"models": [_model("m-2", "zeta")], "next_page_token": "next"}
            return httpx.Response(200, json=page)
        models = [_model("m-1", "alpha"), _model("m-3", "other", run="elsewhere")]
        return httpx.Response(200, json={"models": models})

    found = await _reader(search).logged_models(RUN)
    assert found == [
        {"name": "alpha", "model_id": "m-1", "uri": "models:/m-1"},
        {"name": "zeta", "model_id": "m-2", "uri": "models:/m-2"},
    ]
    assert bodies[0]["experiment_ids"] == ["7"]
    assert bodies[0]["filter"] == f"source_run_id = '{RUN}'"


async def test_an_mlflow_without_logged_models_lists_none() -> None:
    def search(body: dict[str, object]) -> httpx.Response:
        return httpx.Response(404, text="no such endpoint")

    assert await _reader(search).logged_models(RUN) == []
