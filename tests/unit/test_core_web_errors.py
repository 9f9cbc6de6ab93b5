"""Domain errors answer as RFC 9457 problem+json, whichever way a subclass names its status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from theodolite.problems import Problem
from theodolite.web.errors import (
    PROBLEM_JSON,
    Conflict,
    DependencyUnavailable,
    DomainError,
    NotFound,
    install_error_handlers,
)


class Gone(DomainError, status_code=410, title="Gone"):
    """Named by class keywords."""


class Teapot(DomainError):
    # Named by class attributes, as the registry's ValidationFailed does.
    status_code = 418
    title = "I'm a teapot"


async def _answer(exc: BaseException) -> httpx.Response:
    """What a route raising ``exc`` answers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def thing() -> None:
        raise exc

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/thing")


async def _problem(exc: BaseException) -> Any:
    return (await _answer(exc)).json()


@pytest.mark.parametrize(
    ("exc", "status", "title"),
    [
        (NotFound("no job 7"), 404, "Not found"),
        (Conflict("queue 'cpu' exists already"), 409, "Conflict"),
        (DependencyUnavailable("MLflow did not answer"), 503, "Service unavailable"),
        (Gone("moved on"), 410, "Gone"),
        (Teapot("short and stout"), 418, "I'm a teapot"),
        (DomainError("bad Last-Event-ID"), 400, "Bad request"),
    ],
)
async def test_a_domain_error_is_a_problem(exc: DomainError, status: int, title: str) -> None:
    response = await _answer(exc)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": str(exc),
        "instance": "/thing",
    }


async def test_the_problems_of_an_error_are_listed() -> None:
    exc = NotFound("no job 7", [Problem(field="job_id", message="unknown")])
    body = await _problem(exc)
    assert body["problems"] == [{"field": "job_id", "message": "unknown"}]


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (OperationalError("SELECT 1", {}, OSError("refused")), "the database does not answer"),
        (ConnectionRefusedError("refused"), "a dependency does not answer: refused"),
    ],
)
async def test_a_dependency_away_is_service_unavailable(exc: Exception, detail: str) -> None:
    body = await _problem(exc)
    assert (body["status"], body["title"]) == (503, "Service unavailable")
    assert body["detail"].startswith(detail)


async def test_an_answer_lists_at_most_max_problems_and_says_how_many_it_left_out() -> None:
    from theodolite.web.errors import MAX_PROBLEMS

    many = [Problem(field=f"grid.x.{i}", message="not a float") for i in range(MAX_PROBLEMS + 25)]
    body = await _problem(DomainError("bad grid", many))
    assert len(body["problems"]) == MAX_PROBLEMS and body["problems_omitted"] == 25
    assert body["problems"][0]["field"] == "grid.x.0"
    assert f"the first {MAX_PROBLEMS} of {MAX_PROBLEMS + 25} shown" in body["detail"]
    few = await _problem(DomainError("bad grid", many[:3]))
    assert len(few["problems"]) == 3 and "problems_omitted" not in few
