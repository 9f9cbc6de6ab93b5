from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from theodolite.problems import Problem
from theodolite.web.errors import problem_response
from theodolite_api.deps import StateDep

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency does not answer"}})
async def readyz(state: StateDep, request: Request) -> JSONResponse:
    """The database, the broker and the object store answer."""

    async def database() -> None:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def broker() -> None:
        if not state.broker.is_connected:
            raise ConnectionError("not connected")

    async def object_store() -> None:
        await asyncio.to_thread(state.store.ping)

    checks = {"database": database, "broker": broker, "object_store": object_store}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), CHECK_TIMEOUT_S) for check in checks.values()),
        return_exceptions=True,
    )
    problems = [
        Problem(field=name, message=f"{type(result).__name__}: {result}".rstrip(": "))
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    ]
    if problems:
        names = ", ".join(p.field for p in problems)
        return problem_response(503, "Not ready", f"not answering: {names}", request, problems)
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})
