from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError

from theodolite.db.tables import Experiment
from theodolite.web.errors import Conflict
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import ExperimentDep, PageDep, group_for_new
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.repositories import rows
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.experiments import ExperimentCreate, ExperimentPublic
from theodolite_api.views import experiment_public

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Name taken"}}
)
async def create_experiment(
    body: ExperimentCreate, session: SessionDep, state: StateDep, caller: CallerDep
) -> ExperimentPublic:
    """Create an experiment (and its MLflow experiment of the same name) in a group: the one
    named, or the caller's only group."""
    group_id = await group_for_new(session, caller, body.group)
    if await experiment_repo.get_by_name(session=session, name=body.name) is not None:
        raise Conflict(f"an experiment named {body.name!r} exists already")
    mlflow_id = await state.mlflow.ensure_experiment(body.name)
    experiment = Experiment(
        name=body.name,
        group_id=group_id,
        description=body.description,
        mlflow_experiment_id=mlflow_id,
    )
    try:
        await rows.insert(session=session, row=experiment)
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"an experiment named {body.name!r} exists already") from exc
    return experiment_public(experiment, state.mlflow)


@router.get("")
async def list_experiments(
    session: SessionDep, state: StateDep, page: PageDep
) -> Page[ExperimentPublic]:
    """The experiments of the caller's groups, newest first."""
    rows, total = await experiment_repo.page(session=session, page=page)
    return Page(data=[experiment_public(row, state.mlflow) for row in rows], count=total)


@router.get("/{experiment_id}", responses={404: {"description": "No such experiment"}})
async def get_experiment(experiment: ExperimentDep, state: StateDep) -> ExperimentPublic:
    """One experiment."""
    return experiment_public(experiment, state.mlflow)
