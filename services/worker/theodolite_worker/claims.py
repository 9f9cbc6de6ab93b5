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

from theodolite.events import JobSubmitted
from theodolite.observability.tracing import current_trace
from theodolite.signing import SigningKey, worker_signer

log = logging.getLogger(__name__)

WORKER_ID_HEADER = "Theodolite-Worker-Id"  # the worker the token must belong to


def event_signing_key(worker_id: str, token: str | None) -> SigningKey | None:
    """The key the worker signs its events with: its own token, which only it and the api can
    compute, so the api applies an event only from the worker that holds the job's claim. None
    without a token (the api then drops the worker's events as unsigned)."""
    if not token:
        log.warning("worker %s has no token: the api will not apply its events", worker_id)
        return None
    return SigningKey(worker_signer(worker_id), token.encode())


@dataclass
class Claim:
    claimed: bool
    reason: str | None = None


def _body(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_refusal(response: httpx.Response) -> bool:
    """A 404 of the arbiter (no such job), not of a server without the claim route."""
    return response.status_code == 404 and _body(response).get("claimed") is False


def _reason(response: httpx.Response) -> str | None:
    reason = _body(response).get("reason")
    return None if reason is None else str(reason)


class JobClaims:
    """The api's internal claim endpoint; an async context manager owning its HTTP client."""

    def __init__(
        self,
        api_url: str,
        worker_id: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._worker_id = worker_id
        self._headers = {WORKER_ID_HEADER: worker_id}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._transport = transport  # tests answer in process
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._http = httpx.AsyncClient(
            base_url=self._api_url, headers=self._headers, timeout=10, transport=self._transport
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def claim(
        self,
        job_id: uuid.UUID,
        attempt: int,
        stopping: Callable[[], bool],
        submitted: JobSubmitted,
    ) -> Claim | None:
        """The api's answer; while it does not answer, ask again (None once stopping). The
        message ``submitted`` goes with the claim: the api refuses one that is not its own."""
        if self._http is None:
            raise RuntimeError("JobClaims is used inside its async with block")
        delay = 0.5
        while not stopping():
            try:
                response = await self._http.post(
                    f"/internal/jobs/{job_id}/claim",
                    json={
                        "attempt": attempt,
                        "worker_id": self._worker_id,
                        "submitted": submitted.model_dump(mode="json"),
                    },
                    headers=current_trace(),  # the api's side of the claim joins the job's trace
                )
            except httpx.HTTPError as exc:
                log.warning("claiming job %s: the api did not answer (%s); retrying", job_id, exc)
            else:
                if response.status_code == 200:
                    return Claim(claimed=True)
                if response.status_code == 409 or _is_refusal(response):
                    return Claim(claimed=False, reason=_reason(response))
                if response.status_code == 404:  # no claim route: not the internal listener
                    log.error(
                        "claiming job %s: %s has no claim route; THEODOLITE_WORKER_API_URL must "
                        "be the api's internal listener",
                        job_id,
                        self._api_url,
                    )
                elif response.status_code in (401, 403):  # asked again: the api may be rekeyed
                    log.error(
                        "claiming job %s: the api refuses this worker's credential (%s %s); "
                        "is THEODOLITE_WORKER_TOKEN set for worker %s?",
                        job_id,
                        response.status_code,
                        response.text[:200],
                        self._worker_id,
                    )
                else:
                    log.warning(
                        "claiming job %s: api answered %s; retrying", job_id, response.status_code
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        return None
