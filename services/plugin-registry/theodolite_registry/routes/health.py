"""``/healthz`` (the process is up) and ``/readyz`` (its database answers; it says how plugin
validations are isolated)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from theodolite_registry.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    """The database answers; ``validation_isolation`` says what contains a plugin's validation."""
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    isolation = state.publisher.sandbox.isolation
    body: dict[str, object] = {"status": "ready"}
    if isolation is not None:
        body["validation_isolation"] = {
            "sandboxed": isolation.sandboxed,
            "description": isolation.description,
        }
    return JSONResponse(body)
