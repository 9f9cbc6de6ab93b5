"""Every experiment, entry point, job, sweep and pipeline belongs to a group. These dependencies
load one by its path id for the caller, and answer 404 for a row of a group the caller is not in,
exactly as for a row that does not exist, so ids say nothing about other groups."""

from __future__ import annotations

import uuid
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Pipeline, Sweep
from theodolite.db.tables import EntryPointArchive, Experiment, Job
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission, NotFound
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.callers import Caller, Forbidden
from theodolite_api.deps import SessionDep
from theodolite_api.repositories import identity as identity_repo
from theodolite_api.repositories.paging import PageRequest
from theodolite_api.schemas.common import Limit, Offset


class Owned(Protocol):
    @property
    def group_id(self) -> uuid.UUID: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def visible(row: OwnedT | None, caller: Caller, what: str) -> OwnedT:
    """``row`` if the caller may see it; NotFound for a missing row and another group's alike."""
    if row is None or not caller.sees(row.group_id):
        raise NotFound(f"no {what}")
    return row


async def _experiment(
    experiment_id: uuid.UUID, caller: CallerDep, session: SessionDep
) -> Experiment:
    row = await session.get(Experiment, experiment_id)
    return visible(row, caller, f"experiment {experiment_id}")


async def _entrypoint(
    entrypoint_id: uuid.UUID, caller: CallerDep, session: SessionDep
) -> EntryPointArchive:
    row = await session.get(EntryPointArchive, entrypoint_id)
    return visible(row, caller, f"entry point {entrypoint_id}")


async def _job(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> Job:
    return visible(await session.get(Job, job_id), caller, f"job {job_id}")


async def _sweep(sweep_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> Sweep:
    return visible(await session.get(Sweep, sweep_id), caller, f"sweep {sweep_id}")


async def _pipeline(pipeline_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> Pipeline:
    return visible(await session.get(Pipeline, pipeline_id), caller, f"pipeline {pipeline_id}")


async def _page_request(caller: CallerDep, limit: Limit = 50, offset: Offset = 0) -> PageRequest:
    return PageRequest(groups=caller.visible_groups(), limit=limit, offset=offset)


# A listing's page, of the caller's groups only.
PageDep = Annotated[PageRequest, Depends(_page_request)]
ExperimentDep = Annotated[Experiment, Depends(_experiment)]
EntryPointDep = Annotated[EntryPointArchive, Depends(_entrypoint)]
JobDep = Annotated[Job, Depends(_job)]
SweepDep = Annotated[Sweep, Depends(_sweep)]
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]


async def group_for_new(session: AsyncSession, caller: Caller, name: str | None) -> uuid.UUID:
    """The group a new resource goes to: the one named, else the caller's only group in which
    they may submit."""
    if name is not None:
        group = await identity_repo.group_by_name(session=session, name=name)
        if group is None or not caller.sees(group.id):
            raise NotFound(f"no group {name!r}")
        caller.check_writes(group.id, f"group {name!r}")
        return group.id
    writable = caller.writable_groups()
    if len(writable) == 1:
        return writable[0]
    if not writable:
        raise Forbidden(f"user {caller.name!r} is in no group where they may submit")
    names = sorted(caller.group_names.get(g, str(g)) for g in writable)
    raise InvalidSubmission(
        "name the group it belongs to",
        [Problem(field="group", message=f"you submit in several groups: {', '.join(names)}")],
    )
