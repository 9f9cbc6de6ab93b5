"""``/internal``: what the api asks when a job is submitted and what workers prefetch."""

from __future__ import annotations

from fastapi import APIRouter

from theodolite_registry import resolution
from theodolite_registry.deps import SessionDep
from theodolite_registry.repositories import plugins as repository
from theodolite_registry.schemas.plugins import ResolvedPlugin, ResolveRequest, ResolveResponse

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post("/resolve")
async def resolve(body: ResolveRequest, session: SessionDep) -> ResolveResponse:
    """The versions a new job gets: pinned ones if usable, else the latest published."""
    return resolution.resolve(await repository.versions(session=session), body)


@router.get("/catalogue")
async def catalogue(session: SessionDep) -> dict[str, ResolvedPlugin]:
    """The latest published version of every plugin, with its tasks."""
    return resolution.catalogue(await repository.versions(session=session))
