"""Table rows to wire schemas."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive, Experiment, Job
from theodolite.sdk.discovery import Catalogue
from theodolite_api.graph_checks import graph_problems
from theodolite_api.mlflow_reader import MlflowReader
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.schemas.entrypoints import (
    EntryPointArchivePublic,
    EntryPointPublic,
    GraphPublic,
    ParameterPublic,
)
from theodolite_api.schemas.experiments import ExperimentPublic
from theodolite_api.schemas.jobs import JobPublic, TransitionPublic


def experiment_public(experiment: Experiment, mlflow: MlflowReader) -> ExperimentPublic:
    return ExperimentPublic(
        **experiment.model_dump(),
        mlflow_url=mlflow.experiment_url(experiment.mlflow_experiment_id),
    )


def graph_public(graph_text: str | None, catalogue: Catalogue) -> GraphPublic | None:
    if graph_text is None:
        return None
    spec, problems = graph_problems(graph_text, catalogue)
    return GraphPublic(valid=not problems, problems=problems, spec=spec)


def entry_points_public(entry_points: dict) -> list[EntryPointPublic]:
    return [
        EntryPointPublic(
            name=name,
            command=spec["command"],
            parameters=[
                ParameterPublic(
                    name=param_name,
                    type=param["type"],
                    default=param["default"],
                    required=param["default"] is None,
                )
                for param_name, param in spec["parameters"].items()
            ],
        )
        for name, spec in sorted(entry_points.items())
    ]


def entrypoint_public(archive: EntryPointArchive, catalogue: Catalogue) -> EntryPointArchivePublic:
    return EntryPointArchivePublic(
        **archive.model_dump(exclude={"entry_points", "graph_text"}),
        entry_points=entry_points_public(archive.entry_points),
        graph=graph_public(archive.graph_text, catalogue),
    )


async def job_public(
    job: Job, *, session: AsyncSession, mlflow: MlflowReader, log_tail_lines: int
) -> JobPublic:
    history = await job_repo.history(session=session, job_id=job.id)
    tail = await job_repo.log_tail(session=session, job_id=job.id, lines=log_tail_lines)
    run_url = None
    if job.mlflow_run_id is not None:
        experiment = await experiment_repo.get(session=session, experiment_id=job.experiment_id)
        if experiment is not None:
            run_url = mlflow.run_url(experiment.mlflow_experiment_id, job.mlflow_run_id)
    return JobPublic(
        **job.model_dump(exclude={"last_seq"}),
        history=[TransitionPublic(status=t.status, at=t.at, detail=t.detail) for t in history],
        mlflow_run_url=run_url,
        log_tail=tail,
    )
