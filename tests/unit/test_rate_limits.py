"""Writes per key are limited; the answer says when to come back."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from theodolite.web.errors import install_error_handlers
from theodolite_api.auth.authenticate import install_auth_error_handler
from theodolite_api.auth.callers import Caller
from theodolite_api.auth.rate_limits import TooManyRequests, WriteLimiter


def _caller(key_id: uuid.UUID | None) -> Caller:
    return Caller(uuid.uuid4(), "u", False, {}, frozenset(), key_id=key_id)


def test_each_key_has_its_own_count() -> None:
    limiter = WriteLimiter("3/minute", "memory://")
    first, second = _caller(uuid.uuid4()), _caller(uuid.uuid4())
    for _ in range(3):
        limiter.hit(first)
    with pytest.raises(TooManyRequests, match="3 per 1 minute") as refused:
        limiter.hit(first)
    assert 1 <= refused.value.retry_after_s <= 60
    limiter.hit(second)  # another key is not held back


async def test_a_refusal_is_a_429_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)
    install_auth_error_handler(app)

    @app.post("/thing")
    async def thing() -> None:
        raise TooManyRequests("more than 3 per 1 minute writes with this key", 42)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/thing")
    assert response.status_code == 429 and response.headers["retry-after"] == "42"
    assert response.json()["title"] == "Too many requests"
