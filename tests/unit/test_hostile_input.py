"""Hostile input is refused with a 4xx that names the problem, before anything is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from theodolite.web.errors import install_error_handlers
from theodolite_api.schemas.experiments import ExperimentCreate
from theodolite_api.schemas.jobs import JobCreate, JobPublic
from theodolite_api.schemas.queues import QueueCreate
from theodolite_api.schemas.sweeps import SweepCreate
from theodolite_api.schemas.webhooks import WebhookCreate, WebhookUpdate

ZERO = "00000000-0000-0000-0000-000000000000"
JOB = {"experiment_id": ZERO, "entrypoint_id": ZERO}


async def _post(model: type[Any], body: dict[str, Any]) -> httpx.Response:
    """What a route taking ``model`` as its body answers to ``body``."""
    app = FastAPI()
    install_error_handlers(app)

    async def thing(payload: Any) -> None:
        return None

    thing.__annotations__["payload"] = model  # the body's model, chosen per test
    app.post("/thing")(thing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/thing", json=body)


# --- 1. unknown fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (JobCreate, JOB),
        (SweepCreate, JOB),
        (ExperimentCreate, {"name": "e"}),
        (QueueCreate, {"name": "q"}),
        (WebhookCreate, {"url": "https://example.org/hook"}),
        (WebhookUpdate, {}),
    ],
)
def test_every_request_body_refuses_unknown_fields(model: type[Any], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate({**body, "made_up": 1})
    assert [e["loc"] for e in raised.value.errors()] == [("made_up",)]


async def test_unknown_fields_are_named_each_in_the_problem_list() -> None:
    answer = await _post(JobCreate, {**JOB, "timeout": 5, "bogus": True})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problems = answer.json()["problems"]
    assert {p["field"] for p in problems} == {"timeout", "bogus"}
    assert {p["message"] for p in problems} == {"unknown field 'timeout'", "unknown field 'bogus'"}


def test_response_models_keep_accepting_extras() -> None:
    assert JobPublic.model_config.get("extra") != "forbid"
