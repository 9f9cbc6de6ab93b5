"""Asking the api for the right to run an attempt (``POST /internal/jobs/{id}/claim``): the api
is the one arbiter, so an attempt never runs twice at once and a cancelled job never starts."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import httpx

log = logging.getLogger(__name__)


@dataclass
class Claim:
    claimed: bool
    reason: str | None = None


class JobClaims:
    """The api's internal claim endpoint; an async context manager owning its HTTP client."""

    def __init__(
        self, api_url: str, worker_id: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._worker_id = worker_id
        self._transport = transport  # tests answer in process
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._http = httpx.AsyncClient(
            base_url=self._api_url, timeout=10, transport=self._transport
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def claim(
        self, job_id: uuid.UUID, attempt: int, stopping: Callable[[], bool]
    ) -> Claim | None:
        """The api's answer; while it does not answer, ask again (None once stopping)."""
        if self._http is None:
            raise RuntimeError("JobClaims is used inside its async with block")
        delay = 0.5
        while not stopping():
            try:
                response = await self._http.post(
                    f"/internal/jobs/{job_id}/claim",
                    json={"attempt": attempt, "worker_id": self._worker_id},
                )
            except httpx.HTTPError as exc:
                log.warning("claiming job %s: the api did not answer (%s); retrying", job_id, exc)
            else:
                if response.status_code == 200:
                    return Claim(claimed=True)
                if response.status_code in (404, 409):
                    return Claim(claimed=False, reason=response.json().get("reason"))
                log.warning(
                    "claiming job %s: api answered %s; retrying", job_id, response.status_code
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        return None
