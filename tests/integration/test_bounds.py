"""Bounds an api enforces, seen through a running api: the number of queues (each costs the
broker two quorum queues) and writes per key. An api replica of its own carries the small limits,
so the rest of the suite keeps the stack's."""

from __future__ import annotations

import httpx

from tests.fixtures.stack import Stack, api_replica
from tests.integration.helpers import unique


def test_queues_are_capped_and_writes_limited_per_key(stack: Stack, api: httpx.Client) -> None:
    existing = api.get("/queues").json()["count"]
    limits = {
        "THEODOLITE_API_MAX_QUEUES": str(existing + 1),
        "THEODOLITE_AUTH_WRITE_RATE_LIMIT": "4/minute",
    }
    with (
        api_replica(stack, "api-bounds", limits) as url,
        httpx.Client(base_url=url, headers=stack.headers, timeout=60) as replica,
    ):
        name = unique("capped")
        assert replica.post("/queues", json={"name": name}).status_code == 201
        over = replica.post("/queues", json={"name": unique("capped")})
        assert over.status_code == 409
        assert f"limit of {existing + 1} queues" in over.json()["detail"]
        assert "THEODOLITE_API_MAX_QUEUES" in over.json()["detail"]
        assert replica.delete(f"/queues/{name}").status_code == 204  # write 3 of 4
        assert replica.get(f"/queues/{name}").status_code == 404  # reads are not counted
        assert replica.post("/experiments", json={"name": unique("bounded")}).status_code == 201
        limited = replica.post("/experiments", json={"name": unique("bounded")})
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "4 per 1 minute" in limited.json()["detail"]
        # Another key is not held back by this one's count.
        other = api.post(
            "/admin/keys", json={"user": "admin", "name": unique("k"), "scopes": ["submit"]}
        )
        assert other.status_code == 201, other.text
        fresh = {"Authorization": f"Bearer {other.json()['key']}"}
        created = replica.post("/experiments", json={"name": unique("b")}, headers=fresh)
        assert created.status_code == 201
    assert api.get("/queues").json()["count"] == existing  # the suite's stack: unchanged
