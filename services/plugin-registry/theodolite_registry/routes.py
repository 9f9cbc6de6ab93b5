from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import PluginDrop, PluginVersion
from theodolite.problems import Problem
from theodolite.web.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from theodolite_registry import repository
from theodolite_registry.publishing import ValidationFailed, VersionConflict
from theodolite_registry.schemas import (
    DropPublic,
    PluginPublic,
    PluginVersionPublic,
    ResolvedPlugin,
    ResolveRequest,
    ResolveResponse,
)
from theodolite_registry.state import RegistryState

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
internal = APIRouter(prefix="/internal", tags=["internal"])


class InvalidPlugin(DomainError):
    status_code = 422
    title = "Invalid plugin"


def get_state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.core
    return state


StateDep = Annotated[RegistryState, Depends(get_state)]


async def get_session(state: StateDep):  # type: ignore[no-untyped-def]
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def _public(row: PluginVersion) -> PluginVersionPublic:
    return PluginVersionPublic(**row.model_dump())


async def _version_or_404(session: AsyncSession, name: str, version: str) -> PluginVersion:
    row = await repository.get(session=session, name=name, version=version)
    if row is None:
        raise NotFound(f"no plugin {name}=={version}")
    return row


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "These bytes were published before: that version"},
        409: {"description": "This name and version exist with other bytes"},
        422: {"description": "Validation failed: the reason is named"},
    },
)
async def upload_plugin(
    session: SessionDep,
    state: StateDep,
    response: Response,
    archive: Annotated[
        UploadFile, File(description="A wheel, or a source archive with pyproject.toml")
    ],
) -> PluginVersionPublic:
    """Validate a plugin in a sandboxed subprocess, store it immutably and publish it."""
    limit = state.settings.archive_limits.max_bytes
    data = await archive.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the archive is larger than the limit of {limit} bytes")
    try:
        row, created = await state.publisher.publish(
            session, data, archive.filename or "plugin", "upload"
        )
    except ValidationFailed as exc:
        raise InvalidPlugin(
            exc.reason, [Problem(field=f"archive ({exc.kind})", message=exc.reason)]
        ) from exc
    except VersionConflict as exc:
        raise Conflict(str(exc)) from exc
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(row)


@router.get("")
async def list_plugins(session: SessionDep) -> dict[str, object]:
    """Every plugin with its versions and its latest published one."""
    rows = await repository.versions(session=session)
    latest = repository.latest(rows)
    names = sorted({r.name for r in rows})
    data = [
        PluginPublic(
            name=name,
            latest_version=latest[name].version if name in latest else None,
            versions=[r.version for r in rows if r.name == name],
        )
        for name in names
    ]
    return {"data": data, "count": len(data)}


@router.get("/drops")
async def list_drops(session: SessionDep) -> dict[str, object]:
    """Archives found in the plugin bucket: published, or rejected with the reason."""
    rows = list(await session.exec(select(PluginDrop)))
    data = [
        DropPublic(**r.model_dump()) for r in sorted(rows, key=lambda r: r.seen_at, reverse=True)
    ]
    return {"data": data, "count": len(data)}


@router.get("/{name}")
async def list_versions(name: str, session: SessionDep) -> dict[str, object]:
    """Every version of one plugin, oldest first."""
    rows = await repository.versions(session=session, name=name)
    if not rows:
        raise NotFound(f"no plugin {name}")
    return {"data": [_public(r) for r in rows], "count": len(rows)}


@router.get("/{name}/{version}")
async def get_version(name: str, version: str, session: SessionDep) -> PluginVersionPublic:
    """One version with its tasks' input and output schemas."""
    return _public(await _version_or_404(session, name, version))


@router.get("/{name}/{version}/archive", response_class=StreamingResponse)
async def download_version(
    name: str, version: str, session: SessionDep, state: StateDep
) -> StreamingResponse:
    """The archive as uploaded."""
    row = await _version_or_404(session, name, version)
    data = await asyncio.to_thread(
        state.store.get_bytes, state.settings.storage.plugin_bucket, row.archive_key
    )
    return StreamingResponse(
        iter([data]),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{version}-{row.sha256[:12]}"'
        },
    )


@router.post("/{name}/{version}/yank")
async def yank_version(
    name: str, version: str, session: SessionDep, state: StateDep
) -> PluginVersionPublic:
    """No new job may pin this version; running jobs finish with it."""
    row = await _version_or_404(session, name, version)
    return _public(await state.publisher.yank(session, row))


@internal.post("/resolve")
async def resolve(body: ResolveRequest, session: SessionDep) -> ResolveResponse:
    """The versions a new job gets: pinned ones if usable, else the latest published."""
    rows = await repository.versions(session=session)
    latest = repository.latest(rows)
    by_key = {(r.name, r.version): r for r in rows}
    resolved: dict[str, ResolvedPlugin] = {}
    problems: list[Problem] = []
    for name in sorted(set(body.plugins) | set(body.pins)):
        pinned = body.pins.get(name)
        row = by_key.get((name, pinned)) if pinned else latest.get(name)
        if pinned and row is None:
            if any(r.name == name for r in rows):
                problems.append(
                    Problem(field=f"plugins.{name}", message=f"no version {pinned} of {name}")
                )
            continue
        if row is None:
            continue  # not in the registry: perhaps installed where workers run
        if row.status == "yanked":
            problems.append(
                Problem(field=f"plugins.{name}", message=f"{name}=={row.version} is yanked")
            )
            continue
        resolved[name] = ResolvedPlugin(
            **row.model_dump(include={"version", "module", "wheel_key", "wheel_sha256", "tasks"})
        )
    return ResolveResponse(resolved=resolved, problems=problems)


@internal.get("/catalogue")
async def catalogue(session: SessionDep) -> dict[str, ResolvedPlugin]:
    """The latest published version of every plugin, with its tasks."""
    latest = repository.latest(await repository.versions(session=session))
    return {
        name: ResolvedPlugin(
            **row.model_dump(include={"version", "module", "wheel_key", "wheel_sha256", "tasks"})
        )
        for name, row in sorted(latest.items())
    }
