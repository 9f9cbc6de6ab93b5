from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from theodolite.storage import entrypoint_archive_key
from theodolite.web.errors import ArchiveUploadRoute, InvalidArchive, PayloadTooLarge
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import EntryPointDep, PageDep, group_for_new
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.entrypoints.uploads import describe_archive, store_entrypoint_archive
from theodolite_api.repositories import entrypoints as entrypoint_repo
from theodolite_api.schemas.common import Name, Page
from theodolite_api.schemas.entrypoints import (
    EntryPointArchivePublic,
    EntryPointValidation,
    EnvironmentPublic,
)
from theodolite_api.views import (
    entry_points_public,
    entrypoint_public,
    graph_public,
    runnable_files,
)

router = APIRouter(prefix="/entrypoints", tags=["entrypoints"], route_class=ArchiveUploadRoute)

READ_CHUNK = 1 << 20


async def _read_bounded(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the archive is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "These bytes were uploaded before: the existing entry point"},
        413: {"description": "Archive too large"},
        422: {"description": "Invalid archive or MLproject"},
    },
)
async def upload_entrypoint(
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
    response: Response,
    archive: Annotated[
        UploadFile, File(description="tar.gz, tar or zip with an MLproject at its root")
    ],
    group: Annotated[
        Name | None,
        Form(description="The owning group's name; unset: your only group you submit in."),
    ] = None,
) -> EntryPointArchivePublic:
    """Upload an entry point archive; the same bytes always give the group the same entry
    point."""
    group_id = await group_for_new(session, caller, group)
    data = await _read_bounded(archive, state.archive_limits.max_bytes)
    stored, created = await store_entrypoint_archive(
        session=session,
        store=state.store,
        bucket=state.settings.storage.entrypoint_bucket,
        data=data,
        filename=archive.filename,
        limits=state.archive_limits,
        group_id=group_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return await entrypoint_public(stored, session=session, registry=state.registry)


@router.post("/validate")
async def validate_entrypoint(
    session: SessionDep,
    state: StateDep,
    archive: Annotated[UploadFile, File(description="The archive to check; nothing is stored")],
) -> EntryPointValidation:
    """Check an archive, its MLproject and its graph against the current tasks; store nothing."""
    data = await _read_bounded(archive, state.archive_limits.max_bytes)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        described = await asyncio.to_thread(
            describe_archive, data, state.archive_limits, archive.filename
        )
    except InvalidArchive as exc:
        return EntryPointValidation(
            valid=False, problems=exc.problems, sha256=sha256, entry_points=[]
        )
    graph = await graph_public(described.graph_text, session=session, registry=state.registry)
    return EntryPointValidation(
        valid=graph is None or graph.valid,
        problems=graph.problems if graph is not None else [],
        sha256=sha256,
        entry_points=entry_points_public(described.entry_points),
        runnable_files=runnable_files(described.entry_points),
        graph=graph,
        environment=None
        if described.environment is None
        else EnvironmentPublic.model_validate(described.environment),
    )


@router.get("")
async def list_entrypoints(
    session: SessionDep, state: StateDep, page: PageDep
) -> Page[EntryPointArchivePublic]:
    """The entry point archives of the caller's groups, newest first."""
    rows, total = await entrypoint_repo.page(session=session, page=page)
    data = [await entrypoint_public(row, session=session, registry=state.registry) for row in rows]
    return Page(data=data, count=total)


@router.get("/{entrypoint_id}", responses={404: {"description": "No such entry point"}})
async def get_entrypoint(
    row: EntryPointDep, session: SessionDep, state: StateDep
) -> EntryPointArchivePublic:
    """One entry point archive with its declared entry points and parameters."""
    return await entrypoint_public(row, session=session, registry=state.registry)


@router.get(
    "/{entrypoint_id}/archive",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_entrypoint_archive(row: EntryPointDep, state: StateDep) -> StreamingResponse:
    """The archive's bytes, as uploaded."""
    chunks: Iterator[bytes] = state.store.iter_chunks(
        state.settings.storage.entrypoint_bucket, entrypoint_archive_key(row.sha256)
    )
    first = await asyncio.to_thread(next, chunks, b"")  # fail before the headers are sent
    suffix = "zip" if row.archive_format == "zip" else "tar.gz"

    async def body() -> object:
        yield first
        while chunk := await asyncio.to_thread(next, chunks, b""):
            yield chunk

    return StreamingResponse(
        body(),  # type: ignore[arg-type]
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{row.sha256[:12]}.{suffix}"',
            "X-Content-SHA256": row.sha256,
        },
    )
