"""``/api/v1/plugins``: upload, list, show, download and yank versions; the bucket's drops."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.registry_tables import PluginVersion
from theodolite.problems import filename_problem
from theodolite.web.errors import ArchiveUploadRoute, NotFound, PayloadTooLarge, found_or_404
from theodolite_registry.deps import (
    PrincipalDep,
    PublisherDep,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from theodolite_registry.repositories import plugins as repository
from theodolite_registry.schemas.plugins import (
    DropPublic,
    DropsPublic,
    PluginNamePath,
    PluginPublic,
    PluginsPublic,
    PluginVersionPath,
    PluginVersionPublic,
    PluginVersionsPublic,
)
from theodolite_registry.validation import ValidationFailed

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"], route_class=ArchiveUploadRoute)


def _public(row: PluginVersion) -> PluginVersionPublic:
    return PluginVersionPublic(**row.model_dump())


async def _version_or_404(session: AsyncSession, name: str, version: str) -> PluginVersion:
    return found_or_404(
        await repository.get(session=session, name=name, version=version),
        f"no plugin {name}=={version}",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "These bytes were published before: that version"},
        403: {"description": "This plugin name belongs to another group"},
        409: {"description": "This name and version exist with other bytes"},
        422: {"description": "Validation failed: the reason is named"},
    },
)
async def upload_plugin(
    session: SessionDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    principal: PrincipalDep,
    response: Response,
    archive: Annotated[
        UploadFile, File(description="A wheel, or a source archive with pyproject.toml")
    ],
) -> PluginVersionPublic:
    """Validate a plugin in a sandboxed subprocess, store it immutably and publish it; a new
    name becomes the publishing group's."""
    if (problem := filename_problem(archive.filename)) is not None:
        raise ValidationFailed("filename", f"the file name: {problem.message}")
    limit = settings.archive_limits.max_bytes
    data = await archive.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the archive is larger than the limit of {limit} bytes")
    # ValidationFailed (422), NameOwned (403) and VersionConflict (409) are domain errors: the
    # handlers map them.
    row, created = await publisher.publish(
        session, data, archive.filename or "plugin", "upload", principal
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(row)


@router.get("")
async def list_plugins(session: SessionDep) -> PluginsPublic:
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
    return PluginsPublic(data=data, count=len(data))


@router.get("/drops")
async def list_drops(session: SessionDep) -> DropsPublic:
    """Archives found in the plugin bucket: published, or rejected with the reason."""
    data = [DropPublic(**r.model_dump()) for r in await repository.drops(session=session)]
    return DropsPublic(data=data, count=len(data))


@router.get("/{name}")
async def list_versions(name: PluginNamePath, session: SessionDep) -> PluginVersionsPublic:
    """Every version of one plugin, oldest first, and the group owning its name."""
    rows = await repository.versions(session=session, name=name)
    if not rows:
        raise NotFound(f"no plugin {name}")
    versions = PluginVersionsPublic(data=[_public(r) for r in rows], count=len(rows))
    if (owner := await repository.owner(session=session, name=name)) is not None:
        groups = await repository.group_names(session=session, ids={owner.group_id})
        versions.group_id, versions.group = owner.group_id, groups.get(owner.group_id)
    return versions


@router.get("/{name}/{version}")
async def get_version(
    name: PluginNamePath, version: PluginVersionPath, session: SessionDep
) -> PluginVersionPublic:
    """One version with its tasks' input and output schemas."""
    return _public(await _version_or_404(session, name, version))


@router.get("/{name}/{version}/archive", response_class=StreamingResponse)
async def download_version(
    name: PluginNamePath,
    version: PluginVersionPath,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
) -> StreamingResponse:
    """The archive as uploaded."""
    row = await _version_or_404(session, name, version)
    data = await asyncio.to_thread(store.get_bytes, settings.storage.plugin_bucket, row.archive_key)
    return StreamingResponse(
        iter([data]),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{version}-{row.sha256[:12]}"'
        },
    )


@router.post("/{name}/{version}/yank", responses={403: {"description": "Another group's name"}})
async def yank_version(
    name: PluginNamePath,
    version: PluginVersionPath,
    session: SessionDep,
    publisher: PublisherDep,
    principal: PrincipalDep,
) -> PluginVersionPublic:
    """No new job may pin this version; running jobs finish with it. Only the group owning the
    name (or an administrator) yanks."""
    row = await _version_or_404(session, name, version)
    return _public(await publisher.yank(session, row, principal))
