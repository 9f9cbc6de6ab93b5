"""The workers' plane: worker tokens, the secret they come from, and the internal listener's
checks before a claim reaches the arbiter (the public app serves no /internal route)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.fixtures.events import job_submitted
from theodolite.settings import Environment
from theodolite_api.app import create_app, create_internal_app
from theodolite_api.auth.worker_keys import (
    DEVELOPMENT_WORKER_SECRET,
    WorkerSecretMissing,
    token_worker,
    worker_secret,
    worker_token,
)
from theodolite_api.auth.workers import WORKER_ID_HEADER
from theodolite_api.jobs.claims import ClaimAnswer
from theodolite_api.routes import internal
from theodolite_api.settings import ApiSettings
from theodolite_worker.claims import WORKER_ID_HEADER as WORKER_SENDS
from theodolite_worker.claims import Claim, JobClaims

SECRET = "a-stack-secret"

SUBMITTED = job_submitted()


def test_a_token_names_its_worker_and_only_the_secret_makes_it() -> None:
    token = worker_token(SECRET, "host-worker-cpu-0")
    assert token.startswith("host-worker-cpu-0.")
    assert token_worker(SECRET, token) == "host-worker-cpu-0"
    assert token_worker("another-secret", token) is None
    assert worker_token(SECRET, "host-worker-cpu-1") != token
    forged = token.replace("host-worker-cpu-0.", "host-worker-cpu-1.")  # another worker's name
    assert token_worker(SECRET, forged) is None
    assert token_worker(SECRET, "no-dot") is None
    assert token_worker(SECRET, "") is None


def test_production_refuses_to_start_without_a_worker_secret() -> None:
    def production(secret: str | None) -> ApiSettings:
        # Copied, not validated: the other production checks are not this test's.
        return ApiSettings().model_copy(
            update={
                "environment": Environment.PRODUCTION,
                "worker_secret": None if secret is None else SecretStr(secret),
            }
        )

    with pytest.raises(WorkerSecretMissing, match="THEODOLITE_API_WORKER_SECRET"):
        create_internal_app(create_app(production(None)))
    with pytest.raises(WorkerSecretMissing):
        worker_secret(production(DEVELOPMENT_WORKER_SECRET))
    assert worker_secret(production(SECRET)) == SECRET
    # Development: the fixed development secret stands in.
    assert worker_secret(ApiSettings(worker_secret=None)) == DEVELOPMENT_WORKER_SECRET


def test_the_worker_names_itself_in_the_header_the_api_reads() -> None:
    assert WORKER_SENDS == WORKER_ID_HEADER


class _Session:
    async def commit(self) -> None:
        pass


@asynccontextmanager
async def _sessions() -> AsyncIterator[_Session]:
    yield _Session()


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workers the arbiter was asked for (it grants every claim here)."""
    asked: list[str] = []

    async def claim_attempt(**kwargs: Any) -> ClaimAnswer:
        asked.append(kwargs["worker_id"])
        return ClaimAnswer(claimed=True, attempt=kwargs["attempt"])

    monkeypatch.setattr(internal, "claim_attempt", claim_attempt)
    return asked


async def _post(app: Any, path: str, worker_id: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        body = {
            "attempt": 1,
            "worker_id": worker_id,
            "submitted": SUBMITTED.model_dump(mode="json"),
        }
        return await http.post(path, json=body, headers=headers)


async def test_only_a_worker_with_its_own_token_claims_and_only_for_itself(
    claims: list[str],
) -> None:
    public = create_app(ApiSettings(worker_secret=SecretStr(SECRET)))
    public.state.core = SimpleNamespace(
        settings=public.state.settings, sessions=_sessions, relay=SimpleNamespace(wake=lambda: None)
    )
    app = create_internal_app(public)
    path = f"/internal/jobs/{uuid.uuid4()}/claim"

    def bearer(worker_id: str, secret: str = SECRET) -> dict[str, str]:
        return {"Authorization": f"Bearer {worker_token(secret, worker_id)}"}

    answers = {
        "none": await _post(app, path, "a", {}),
        "forged": await _post(app, path, "a", bearer("a", "not-the-secret")),
        "another's": await _post(app, path, "a", {WORKER_ID_HEADER: "a", **bearer("b")}),
        "as another": await _post(app, path, "b", {WORKER_ID_HEADER: "a", **bearer("a")}),
        "own": await _post(app, path, "a", {WORKER_ID_HEADER: "a", **bearer("a")}),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "none": 401,
        "forged": 401,
        "another's": 403,
        "as another": 403,
        "own": 200,
    }
    assert answers["none"].headers["WWW-Authenticate"].startswith("Bearer")
    assert answers["own"].json() == {"claimed": True, "attempt": 1}
    assert claims == ["a"]  # the refused ones never reached the arbiter
    assert (await _post(public, path, "a", bearer("a"))).status_code == 404


async def test_the_worker_sends_its_token_and_its_name() -> None:
    seen: list[httpx.Headers] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"claimed": True, "attempt": 1})

    token = worker_token(SECRET, "worker-1")
    transport = httpx.MockTransport(api)
    async with JobClaims("http://api", "worker-1", token=token, transport=transport) as claims:
        assert await claims.claim(uuid.uuid4(), 1, lambda: False, SUBMITTED) == Claim(claimed=True)
    assert seen[0]["Authorization"] == f"Bearer {token}"
    assert seen[0][WORKER_ID_HEADER] == "worker-1"


async def test_a_server_without_the_claim_route_is_asked_again_not_taken_for_a_refusal() -> None:
    # A worker pointed at the public port gets its 404: that must not drop the job.
    answers = [
        httpx.Response(404, json={"detail": "Not Found"}),
        httpx.Response(404, json={"claimed": False, "reason": "no such job"}),
    ]
    async with JobClaims(
        "http://api", "w", transport=httpx.MockTransport(lambda request: answers.pop(0))
    ) as claims:
        assert await claims.claim(uuid.uuid4(), 1, lambda: False, SUBMITTED) == Claim(
            False, "no such job"
        )
    assert answers == []
