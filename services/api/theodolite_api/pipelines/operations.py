"""Creating a pipeline (all its jobs in one transaction, or none), its view and its cancel."""

from __future__ import annotations

import uuid
from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Pipeline, PipelineJob
from theodolite.db.tables import Job, utcnow
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite.problems import Problem
from theodolite.web.errors import Conflict, DomainError, InvalidSubmission
from theodolite_api.auth.callers import Caller
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.jobs.cancellation import request_cancel
from theodolite_api.jobs.children import ChildProblems, submit_child, swept_value_problem
from theodolite_api.pipelines import progress
from theodolite_api.pipelines.plan import (
    MAX_DEPENDENCIES,
    JobKey,
    PipelinePlan,
    StageJobPlan,
    plan_pipeline,
    upstream_first,
)
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.repositories import pipelines as pipeline_repo
from theodolite_api.schemas.jobs import JobCreate
from theodolite_api.schemas.pipelines import (
    PipelineCreate,
    PipelinePublic,
    PipelineSummary,
    StageCreate,
    StageJobPublic,
    StagePublic,
)
from theodolite_api.settings import ApiSettings


def _located(problem: Problem, stage: str, job: StageJobPlan, spec: StageCreate) -> Problem:
    """A stage job's problem, said where the pipeline's author can fix it."""
    if problem.field == "experiment_id":
        return problem
    if spec.sweep is not None:
        swept = swept_value_problem(
            problem,
            grid=spec.sweep.grid,
            seeds=spec.sweep.seeds,
            seed_param=spec.sweep.seed_param,
            point=job.point,
            prefix=f"stages.{stage}.sweep.",
        )
        if swept is not None:
            return swept
    return Problem(field=f"stages.{stage}.{problem.field}", message=problem.message)


async def _submit_jobs(
    *,
    session: AsyncSession,
    request: PipelineCreate,
    plan: PipelinePlan,
    pipeline_id: uuid.UUID,
    parent_run_id: str,
    caller: Caller,
    settings: ApiSettings,
    registry: RegistryClient,
    mlflow: MlflowReader,
    problems: ChildProblems,
) -> list[PipelineJob]:
    """Every stage's jobs, upstream first, each waiting on its upstream jobs; what is wrong
    with them goes to ``problems``."""
    created: dict[JobKey, Job] = {}
    links: list[PipelineJob] = []
    for stage in plan.order:
        spec = request.stages[stage]
        for planned in plan.jobs[stage]:
            # Past the bound the plan refused it already: the job is still checked, within it.
            waits = [created[key].id for key in planned.depends_on if key in created]
            waits = waits[:MAX_DEPENDENCIES]
            child = JobCreate(
                experiment_id=request.experiment_id,
                entrypoint_id=spec.entrypoint_id,
                entry_point=spec.entry_point,
                params={**planned.params, **planned.templates},
                queue=spec.queue,
                timeout_s=spec.timeout_s,
                max_retries=spec.max_retries,
                retry_on_failure=spec.retry_on_failure,
                depends_on=waits,
            )
            tags = {
                "mlflow.parentRunId": parent_run_id,
                "theodolite.pipeline_id": str(pipeline_id),
                "theodolite.pipeline_stage": stage,
            }
            job = await submit_child(
                session=session,
                request=child,
                caller=caller,
                settings=settings,
                registry=registry,
                mlflow=mlflow,
                problems=problems,
                locate=partial(_located, stage=stage, job=planned, spec=spec),
                deferred=frozenset(planned.templates),
                run_tags=tags,
            )
            if job is None:
                continue
            created[(stage, planned.point_index)] = job
            links.append(
                PipelineJob(
                    pipeline_id=pipeline_id,
                    job_id=job.id,
                    stage=stage,
                    point_index=planned.point_index,
                    point=planned.point,
                    templates=planned.templates,
                )
            )
    return links


async def create_pipeline(
    *,
    session: AsyncSession,
    request: PipelineCreate,
    caller: Caller,
    settings: ApiSettings,
    registry: RegistryClient,
    mlflow: MlflowReader,
) -> Pipeline:
    """Create the pipeline, its MLflow parent run and every stage's jobs, or raise
    InvalidSubmission naming every problem (then nothing is created: the caller does not commit,
    and the parent run is deleted). Does not commit."""
    plan, shape_problems = plan_pipeline(request.stages, settings.sweeps.max_points)
    problems = ChildProblems(shape_problems)
    experiment = await experiment_repo.get(session=session, experiment_id=request.experiment_id)
    if experiment is not None and caller.sees(experiment.group_id):
        caller.check_writes(experiment.group_id, f"experiment {experiment.name!r}")
    else:
        experiment = None  # each stage's job says so (another group's is as unknown)
    pipeline_id = uuid.uuid4()
    now = utcnow()
    # Only for a pipeline that may be created: its stages' jobs are checked either way.
    parent_run_id = None
    if experiment is not None and not problems:
        parent_run_id = await mlflow.start_run(
            experiment.mlflow_experiment_id,
            request.name,
            tags={"theodolite.pipeline_id": str(pipeline_id), "theodolite.pipeline": request.name},
            start_ms=int(now.timestamp() * 1000),
        )
    try:
        links = await _submit_jobs(
            session=session,
            request=request,
            plan=plan,
            pipeline_id=pipeline_id,
            parent_run_id=parent_run_id or "",
            caller=caller,
            settings=settings,
            registry=registry,
            mlflow=mlflow,
            problems=problems,
        )
        if problems:
            found = problems.found
            raise InvalidSubmission(f"{len(found)} problem(s) in the pipeline", found)
    except BaseException:
        if parent_run_id is not None:
            try:
                await mlflow.delete_run(parent_run_id)
            except DomainError:
                pass  # a deleted run is hidden anyway; a leftover one says who made it (its tags)
        raise
    assert experiment is not None  # its absence is a problem of every stage's job
    pipeline = Pipeline(
        id=pipeline_id,
        experiment_id=experiment.id,
        group_id=experiment.group_id,
        name=request.name,
        stages={name: stage.model_dump(mode="json") for name, stage in request.stages.items()},
        depends_on=plan.upstream,
        status=progress.RUNNING,
        mlflow_run_id=parent_run_id,
        created_at=now,
        updated_at=now,
    )
    await pipeline_repo.add(session=session, pipeline=pipeline, links=links)
    stages = {name: "waiting" for name in plan.order}
    for link in links:
        if not plan.upstream[link.stage]:
            stages[link.stage] = JobStatus.QUEUED.value
    progress.announce(session=session, pipeline=pipeline, from_status=None, stages=stages)
    return pipeline


async def cancel_pipeline(*, session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    """Cancel every job of the pipeline that has not ended (running ones through their
    workers); the pipeline ends ``cancelled`` once they all have. Does not commit."""
    pipeline = await pipeline_repo.get(session=session, pipeline_id=pipeline_id, for_update=True)
    assert pipeline is not None  # the route loaded it for the caller
    if pipeline.status in progress.FINISHED:
        raise Conflict(f"pipeline {pipeline.id} has ended already ({pipeline.status})")
    if pipeline.cancel_requested_at is None:
        pipeline.cancel_requested_at = utcnow()
    reason = f"its pipeline {pipeline.id} was cancelled"
    rows = await pipeline_repo.jobs_of(session=session, pipeline_id=pipeline.id, for_update=True)
    for _, job in rows:
        # Cancelling one cancels what waits on it: those are ended by the time they come.
        if not is_terminal(JobStatus(job.status)) and job.cancel_requested_at is None:
            await request_cancel(session=session, job=job, reason=reason)
    return pipeline


def summary(pipeline: Pipeline) -> PipelineSummary:
    return PipelineSummary(
        **pipeline.model_dump(include=set(PipelineSummary.model_fields) - {"finished"}),
        finished=pipeline.status in progress.FINISHED,
    )


async def public(
    *, session: AsyncSession, pipeline: Pipeline, mlflow: MlflowReader
) -> PipelinePublic:
    rows = await pipeline_repo.jobs_of(session=session, pipeline_id=pipeline.id)
    by_stage: dict[str, list[StageJobPublic]] = {name: [] for name in pipeline.depends_on}
    for link, job in rows:
        by_stage.setdefault(link.stage, []).append(
            StageJobPublic(
                job_id=job.id,
                status=job.status,
                point=link.point,
                mlflow_run_id=job.mlflow_run_id,
                error=job.error,
            )
        )
    stages = [
        StagePublic(
            name=name,
            status=progress.stage_status(j.status for j in by_stage[name]),
            depends_on=sorted(pipeline.depends_on[name]),
            jobs=by_stage[name],
        )
        for name in upstream_first(pipeline.depends_on)
    ]
    experiment = await experiment_repo.get(session=session, experiment_id=pipeline.experiment_id)
    url = (
        mlflow.run_url(experiment.mlflow_experiment_id, pipeline.mlflow_run_id)
        if experiment is not None and pipeline.mlflow_run_id is not None
        else None
    )
    return PipelinePublic(**summary(pipeline).model_dump(), mlflow_run_url=url, stages=stages)
