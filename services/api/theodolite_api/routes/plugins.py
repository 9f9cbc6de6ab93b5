"""The plugin registry's API, served by the gateway so users see one API and one Swagger UI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Response, UploadFile

from theodolite.web.errors import ArchiveUploadRoute
from theodolite_api.clients.registry import plugin_path
from theodolite_api.deps import StateDep
from theodolite_api.schemas.common import PluginNamePath, PluginVersionPath

router = APIRouter(prefix="/plugins", tags=["plugins"], route_class=ArchiveUploadRoute)


def _relay(upstream: Any) -> Response:
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
        headers={k: v for k, v in upstream.headers.items() if k.lower() in {"content-disposition"}},
    )


@router.post(
    "",
    status_code=201,
    responses={200: {}, 409: {"description": "Version exists"}, 422: {"description": "Invalid"}},
)
async def upload_plugin(
    state: StateDep,
    archive: Annotated[
        UploadFile, File(description="A wheel, or a source archive with pyproject.toml")
    ],
) -> Response:
    """Upload a plugin: validated in a sandbox, stored immutably, published to workers."""
    data = await archive.read()
    return _relay(await state.registry.upload(archive.filename, data))


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


@router.post("/{name}/{version}/yank")
async def yank_version(
    name: PluginNamePath, version: PluginVersionPath, state: StateDep
) -> Response:
    """No new job may pin this version; running jobs finish with it."""
    return _relay(await state.registry.forward("POST", plugin_path(name, version, "yank")))
