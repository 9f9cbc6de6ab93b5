from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError

from theodolite.db.tables import Experiment
from theodolite.web.errors import Conflict, found_or_404
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.schemas.common import Limit, Offset, Page
from theodolite_api.schemas.experiments import ExperimentCreate, ExperimentPublic
from theodolite_api.views import experiment_public

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Name taken"}}
)
async def create_experiment(
    body: ExperimentCreate, session: SessionDep, state: StateDep
) -> ExperimentPublic:
    """Create an experiment (and its MLflow experiment of the same name)."""
    if await experiment_repo.get_by_name(session=session, name=body.name) is not None:
        raise Conflict(f"an experiment named {body.name!r} exists already")
    mlflow_id = await state.mlflow.ensure_experiment(body.name)
    experiment = Experiment(
        name=body.name, description=body.description, mlflow_experiment_id=mlflow_id
    )
    try:
        await experiment_repo.add(session=session, experiment=experiment)
        await session.commit()
    except IntegrityError as exc:
        raise Conflict(f"an experiment named {body.name!r} exists already") from exc
    return experiment_public(experiment, state.mlflow)


@router.get("")
async def list_experiments(
    session: SessionDep, state: StateDep, limit: Limit = 50, offset: Offset = 0
) -> Page[ExperimentPublic]:
    """Experiments, newest first."""
    rows, total = await experiment_repo.page(session=session, limit=limit, offset=offset)
    return Page(data=[experiment_public(row, state.mlflow) for row in rows], count=total)


@router.get("/{experiment_id}", responses={404: {"description": "No such experiment"}})
async def get_experiment(
    experiment_id: uuid.UUID, session: SessionDep, state: StateDep
) -> ExperimentPublic:
    """One experiment."""
    experiment = found_or_404(
        await experiment_repo.get(session=session, experiment_id=experiment_id),
        f"no experiment {experiment_id}",
    )
    return experiment_public(experiment, state.mlflow)
