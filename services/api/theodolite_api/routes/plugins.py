"""The plugin registry's API, served by the gateway so users see one API and one Swagger UI.
A plugin name belongs to the group that first published it: the api names the caller's group
to the registry (``acting_for``), which refuses another group's name."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.identity_tables import SYSTEM_GROUP_ID
from theodolite.web.errors import ArchiveUploadRoute, NotFound
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.callers import WRITING_ROLES, Caller, Forbidden
from theodolite_api.auth.ownership import group_for_new
from theodolite_api.clients.registry import acting_for, plugin_path
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import identity as identity_repo
from theodolite_api.schemas.common import Name, PluginNamePath, PluginVersionPath

router = APIRouter(prefix="/plugins", tags=["plugins"], route_class=ArchiveUploadRoute)


def _relay(upstream: Any) -> Response:
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
        headers={k: v for k, v in upstream.headers.items() if k.lower() in {"content-disposition"}},
    )


def _check_publishes(
    caller: Caller, group_id: uuid.UUID, what: str, group_name: str | None = None
) -> None:
    """Publishing and yanking in a group takes a writing role there (an administrator: any)."""
    if caller.is_admin or caller.roles.get(group_id) in WRITING_ROLES:
        return
    group = group_name or caller.group_names.get(group_id, str(group_id))
    if group_id in caller.roles:
        raise Forbidden(f"your role in group {group!r} is viewer: it may not change {what}")
    raise Forbidden(f"{what} belongs to group {group!r}")


async def _publishing_group(session: AsyncSession, caller: Caller, name: str | None) -> uuid.UUID:
    """The group an upload is for: the one named, else the caller's only group in which they
    may write; an administrator in none publishes for the system group."""
    if name is None:
        if caller.is_admin and not caller.writable_groups():
            return SYSTEM_GROUP_ID
        return await group_for_new(session, caller, None)
    group = await identity_repo.group_by_name(session=session, name=name)
    if group is None or not caller.sees(group.id):
        raise NotFound(f"no group {name!r}")
    _check_publishes(caller, group.id, f"plugins of group {name!r}")
    return group.id


@router.post(
    "",
    status_code=201,
    responses={
        200: {},
        403: {"description": "The plugin name belongs to another group"},
        409: {"description": "Version exists"},
        422: {"description": "Invalid"},
    },
)
async def upload_plugin(
    state: StateDep,
    session: SessionDep,
    caller: CallerDep,
    archive: Annotated[
        UploadFile, File(description="A wheel, or a source archive with pyproject.toml")
    ],
    group: Annotated[
        Name | None,
        Form(
            description="The group publishing: a new plugin name becomes its own, a known name "
            "must be its already. Unset: your only group you submit in."
        ),
    ] = None,
) -> Response:
    """Upload a plugin: validated in a sandbox, stored immutably, published to workers. A plugin
    name belongs to the group that first published it."""
    group_id = await _publishing_group(session, caller, group)
    # End the look-up's transaction: no connection is held while the registry validates.
    await session.commit()
    data = await archive.read()
    headers = acting_for(group_id, administrator=caller.is_admin)
    return _relay(await state.registry.upload(archive.filename, data, headers))


@router.get("")
async def list_plugins(state: StateDep) -> Response:
    """Every plugin with its versions and its latest published one."""
    return _relay(await state.registry.forward("GET", "/api/v1/plugins"))


@router.get("/drops")
async def list_drops(state: StateDep) -> Response:
    """Archives found in the plugin bucket: published, or rejected with the reason."""
    return _relay(await state.registry.forward("GET", "/api/v1/plugins/drops"))


@router.get("/{name}")
async def list_versions(name: PluginNamePath, state: StateDep) -> Response:
    """Every version of one plugin."""
    return _relay(await state.registry.forward("GET", plugin_path(name)))


@router.get("/{name}/{version}")
async def get_version(
    name: PluginNamePath, version: PluginVersionPath, state: StateDep
) -> Response:
    """One version with its tasks' input and output schemas."""
    return _relay(await state.registry.forward("GET", plugin_path(name, version)))


@router.get("/{name}/{version}/archive")
async def download_version(
    name: PluginNamePath, version: PluginVersionPath, state: StateDep
) -> Response:
    """The archive as uploaded."""
    path = plugin_path(name, version, "archive")
    return _relay(await state.registry.forward("GET", path))


@router.post("/{name}/{version}/yank", responses={403: {"description": "Another group's name"}})
async def yank_version(
    name: PluginNamePath, version: PluginVersionPath, state: StateDep, caller: CallerDep
) -> Response:
    """No new job may pin this version; running jobs finish with it. Only the group owning the
    plugin name (or an administrator) yanks."""
    versions = await state.registry.forward("GET", plugin_path(name))
    if versions.status_code != 200:
        return _relay(versions)
    body = versions.json()
    group_id = SYSTEM_GROUP_ID if body.get("group_id") is None else uuid.UUID(body["group_id"])
    _check_publishes(caller, group_id, f"plugin name {name!r}", body.get("group"))
    headers = acting_for(group_id, administrator=caller.is_admin)
    path = plugin_path(name, version, "yank")
    return _relay(await state.registry.forward("POST", path, headers=headers))
