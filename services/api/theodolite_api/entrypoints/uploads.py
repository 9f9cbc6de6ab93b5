"""Entry point archive upload: check everything, then store bytes and row, or nothing."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.archives import ArchiveContents, ArchiveLimits, inspect_archive
from theodolite.db.tables import EntryPointArchive
from theodolite.environments import DeclaredEnvironment, mlproject_environment
from theodolite.graphs.spec import GRAPH_FILENAME
from theodolite.mlproject import describe_project, mlproject_names, project_name_for
from theodolite.problems import Problem, ProblemsError, control_character_message, filename_problem
from theodolite.storage import ObjectStore, entrypoint_archive_key
from theodolite.web.errors import InvalidArchive
from theodolite_api.repositories import entrypoints as entrypoint_repo
from theodolite_api.repositories import rows

log = logging.getLogger(__name__)


@dataclass
class ArchiveDescription:
    format: str
    project_name: str | None
    entry_points: dict[str, Any]  # as stored: {name: {"command", "parameters"}}
    graph_text: str | None
    # theodolite.environments.DeclaredEnvironment, as stored
    environment: dict[str, Any] | None = None


def describe_archive(
    data: bytes, limits: ArchiveLimits, filename: str | None = None
) -> ArchiveDescription:
    """What a valid archive declares; raise InvalidArchive naming every problem. Without an
    MLproject (found in any capitals, as MLflow does) the project is named after the archive
    and its .py and .sh files are its entry points."""
    try:
        contents = inspect_archive(data, limits)
        project = describe_project(
            contents.files,
            lambda name: _text(contents, name, field="MLproject"),
            fallback_name=project_name_for(filename),
        )
        environment = _declared_environment(contents)
    except ProblemsError as exc:
        raise InvalidArchive(str(exc), exc.problems) from exc
    entry_points = {name: spec.model_dump() for name, spec in project.entry_points.items()}
    graph_text = None
    if GRAPH_FILENAME in contents.files:
        graph_text = _text(contents, GRAPH_FILENAME, field="graph")
    return ArchiveDescription(
        contents.format, project.name, entry_points, graph_text, environment.model_dump()
    )


def _declared_environment(contents: ArchiveContents) -> DeclaredEnvironment:
    """The environment the archive's MLproject declares (its file read from the archive)."""
    names = mlproject_names(contents.files)
    text = _text(contents, names[0], field="MLproject") if names else None
    return mlproject_environment(text, contents.read)  # a missing member: KeyError


def _text(contents: ArchiveContents, name: str, *, field: str) -> str:
    try:
        text = contents.read(name).decode()
    except UnicodeDecodeError as exc:
        raise InvalidArchive(
            f"{name} is not UTF-8 text", [Problem(field=field, message="not UTF-8 text")]
        ) from exc
    # The text is stored in PostgreSQL, which refuses NUL.
    if (message := control_character_message(text, allow_whitespace=True)) is not None:
        raise InvalidArchive(f"{name}: {message}", [Problem(field=field, message=message)])
    return text


async def store_entrypoint_archive(
    *,
    session: AsyncSession,
    store: ObjectStore,
    bucket: str,
    data: bytes,
    filename: str | None,
    limits: ArchiveLimits,
    group_id: uuid.UUID,
) -> tuple[EntryPointArchive, bool]:
    """The group's stored entry point for these bytes and whether it is new. Commits on
    success."""
    if (problem := filename_problem(filename)) is not None:
        raise InvalidArchive(f"the file name: {problem.message}", [problem])
    sha256 = hashlib.sha256(data).hexdigest()
    existing = await entrypoint_repo.get_by_sha256(
        session=session, group_id=group_id, sha256=sha256
    )
    if existing is not None:
        return existing, False
    described = await asyncio.to_thread(describe_archive, data, limits, filename)
    key = entrypoint_archive_key(sha256)
    # Bytes first, row second: a row always points at stored bytes. Content addressing makes a
    # concurrent upload of the same bytes harmless.
    await asyncio.to_thread(store.put_bytes, bucket, key, data, "application/octet-stream")
    row = EntryPointArchive(
        group_id=group_id,
        sha256=sha256,
        filename=filename,
        size_bytes=len(data),
        archive_format=described.format,
        project_name=described.project_name,
        entry_points=described.entry_points,
        graph_text=described.graph_text,
        environment=described.environment,
    )
    try:
        await rows.insert(session=session, row=row)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        concurrent = await entrypoint_repo.get_by_sha256(
            session=session, group_id=group_id, sha256=sha256
        )
        if concurrent is None:
            raise
        return concurrent, False
    return row, True
