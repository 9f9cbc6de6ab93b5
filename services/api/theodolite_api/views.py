"""Table rows to wire schemas."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive, Experiment, Job, utcnow
from theodolite.lifecycle import JobStatus
from theodolite.problems import Problem
from theodolite.web.errors import DependencyUnavailable
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.entrypoints.graph_checks import check_graph
from theodolite_api.jobs.dependencies import dependency_ids
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.schemas.entrypoints import (
    EntryPointArchivePublic,
    EntryPointPublic,
    GraphPublic,
    ParameterPublic,
)
from theodolite_api.schemas.experiments import ExperimentPublic
from theodolite_api.schemas.jobs import JobPublic, TransitionPublic
from theodolite_api.settings import ApiSettings


def experiment_public(experiment: Experiment, mlflow: MlflowReader) -> ExperimentPublic:
    return ExperimentPublic(
        **experiment.model_dump(),
        mlflow_url=mlflow.experiment_url(experiment.mlflow_experiment_id),
    )


async def graph_public(
    graph_text: str | None, *, session: AsyncSession, registry: RegistryClient
) -> GraphPublic | None:
    if graph_text is None:
        return None
    try:
        checked = await check_graph(graph_text, session=session, registry=registry)
    except DependencyUnavailable as exc:
        problem = Problem(field="graph", message=f"could not be checked now: {exc.detail}")
        return GraphPublic(valid=False, problems=[problem], spec=None)
    return GraphPublic(valid=not checked.problems, problems=checked.problems, spec=checked.spec)


def entry_points_public(entry_points: dict) -> list[EntryPointPublic]:
    """The declared entry points; the files that run as entry points are ``runnable_files``."""
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
            warnings=spec.get("warnings", []),
        )
        for name, spec in sorted(entry_points.items())
        if not spec.get("file")
    ]


def runnable_files(entry_points: dict) -> list[str]:
    """The archive's .py and .sh files, each runnable as an entry point (``-e train.py``)."""
    return sorted(name for name, spec in entry_points.items() if spec.get("file"))


async def entrypoint_public(
    archive: EntryPointArchive, *, session: AsyncSession, registry: RegistryClient
) -> EntryPointArchivePublic:
    return EntryPointArchivePublic(
        **archive.model_dump(exclude={"entry_points", "graph_text"}),
        entry_points=entry_points_public(archive.entry_points),
        runnable_files=runnable_files(archive.entry_points),
        graph=await graph_public(archive.graph_text, session=session, registry=registry),
    )


async def job_public(
    job: Job, *, session: AsyncSession, mlflow: MlflowReader, settings: ApiSettings
) -> JobPublic:
    history = await job_repo.history(session=session, job_id=job.id)
    tail = await job_repo.log_tail(session=session, job_id=job.id, lines=settings.log_tail_lines)
    waiting = False
    if job.status == JobStatus.QUEUED.value:
        seen_after = utcnow() - timedelta(seconds=settings.worker_liveness_s)
        live = await queue_repo.live_worker_counts(session=session, seen_after=seen_after)
        waiting = live.get(job.queue, 0) == 0
    run_url = None
    if job.mlflow_run_id is not None:
        experiment = await experiment_repo.get(session=session, experiment_id=job.experiment_id)
        if experiment is not None:
            run_url = mlflow.run_url(experiment.mlflow_experiment_id, job.mlflow_run_id)
    return JobPublic(
        **job.model_dump(exclude={"last_seq", "webhook_secret"}),
        history=[TransitionPublic(status=t.status, at=t.at, detail=t.detail) for t in history],
        mlflow_run_url=run_url,
        log_tail=tail,
        waiting_for_worker=waiting,
        depends_on=await dependency_ids(session=session, job_id=job.id),
    )
