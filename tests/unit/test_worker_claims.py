"""The worker's claim client against an in-process api: answers, refusals, an api away."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.fixtures.events import job_submitted
from theodolite_worker.claims import Claim, JobClaims

SUBMITTED = job_submitted()


async def test_claims_are_answered_refused_or_asked_again() -> None:
    answers = [httpx.Response(503), httpx.Response(200, json={})]
    asked: list[tuple[str, bytes]] = []

    def api(request: httpx.Request) -> httpx.Response:
        asked.append((request.url.path, request.content))
        if request.url.path.endswith(f"{refused}/claim"):
            return httpx.Response(409, json={"reason": "cancelled"})
        return answers.pop(0)

    claimed, refused = uuid.uuid4(), uuid.uuid4()
    async with JobClaims("http://api/", "worker-1", transport=httpx.MockTransport(api)) as claims:
        assert await claims.claim(claimed, 1, lambda: False, SUBMITTED) == Claim(claimed=True)
        assert await claims.claim(refused, 2, lambda: False, SUBMITTED) == Claim(False, "cancelled")
        assert (
            await claims.claim(claimed, 1, lambda: True, SUBMITTED) is None
        )  # stopping: not asked
    assert [path for path, _ in asked] == [f"/internal/jobs/{claimed}/claim"] * 2 + [
        f"/internal/jobs/{refused}/claim"
    ]
    assert b'"worker_id":"worker-1"' in asked[0][1]


async def test_claims_need_their_async_with_block() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await JobClaims("http://api", "w").claim(uuid.uuid4(), 1, lambda: False, SUBMITTED)
