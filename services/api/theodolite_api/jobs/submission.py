"""Job submission: validate everything, then write the job, its first transition (with its
``job.status_changed``) and its ``job.submitted`` event in one transaction (the outbox)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive, Job, utcnow
from theodolite.downloads import download_refusal, worker_fetched
from theodolite.environments import DeclaredEnvironment, environment_problems
from theodolite.events import PluginPin
from theodolite.lifecycle import JobStatus
from theodolite.mlproject import EntryPointSpec, resolve_parameters
from theodolite.problems import Problem, ProblemsError
from theodolite.sandbox.limits import SandboxLimits
from theodolite.web.errors import InvalidSubmission
from theodolite_api.auth.callers import Caller, Forbidden
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.entrypoints.graph_checks import check_graph
from theodolite_api.jobs import transitions
from theodolite_api.jobs.dependencies import (
    entry_status,
    record_dependencies,
    settle,
    visible_dependencies,
)
from theodolite_api.jobs.messages import enqueue_attempt
from theodolite_api.jobs.readable import readable_experiments
from theodolite_api.repositories import entrypoints as entrypoint_repo
from theodolite_api.repositories import experiments as experiment_repo
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.schemas.common import limits_row
from theodolite_api.schemas.jobs import JobCreate
from theodolite_api.settings import ApiSettings
from theodolite_api.webhooks.callback_urls import callback_url_problems, new_webhook_secret

PRODUCER = "api"


async def submit_job(
    *,
    session: AsyncSession,
    request: JobCreate,
    caller: Caller,
    settings: ApiSettings,
    registry: RegistryClient,
    mlflow: MlflowReader,
    deferred: frozenset[str] = frozenset(),
    run_tags: dict[str, str] | None = None,
) -> Job:
    """Create a queued job in its experiment's group, or raise InvalidSubmission listing every
    problem (Forbidden where the caller may not submit there). Does not commit.

    A pipeline stage's job names its ``deferred`` parameters (references, typed once resolved)
    and the tags its runs get (``run_tags``: the pipeline's parent run)."""
    problems: list[Problem] = []
    experiment = await experiment_repo.get(session=session, experiment_id=request.experiment_id)
    if experiment is None or not caller.sees(experiment.group_id):
        experiment = None  # another group's is as unknown as a missing one
        problems.append(Problem(field="experiment_id", message="no such experiment"))
    else:
        caller.check_writes(experiment.group_id, f"experiment {experiment.name!r}")
    queue = await queue_repo.get(session=session, name=request.queue)
    if queue is None:
        known = ", ".join(q.name for q in await queue_repo.all_queues(session=session))
        problems.append(Problem(field="queue", message=f"no such queue (known: {known})"))
    elif experiment is not None and not queue_repo.open_to(queue, experiment.group_id):
        raise Forbidden(f"queue {queue.name!r} is not open to this experiment's group")
    elif request.limits is not None and queue.max_limits:
        problems.extend(_limit_problems(request.limits, queue.max_limits))
    timeout_s = request.timeout_s if request.timeout_s is not None else settings.default_timeout_s
    if request.callback_url is not None:
        problems.extend(callback_url_problems(request.callback_url, settings, "callback_url"))
    if timeout_s is not None and timeout_s > settings.max_timeout_s:
        problems.append(
            Problem(field="timeout_s", message=f"at most {settings.max_timeout_s} seconds")
        )
    archive = await entrypoint_repo.get(session=session, entrypoint_id=request.entrypoint_id)
    if archive is not None and not caller.sees(archive.group_id):
        archive = None
    params: dict[str, str] = {}
    pins: dict[str, PluginPin] = {}
    spec: EntryPointSpec | None = None
    if archive is None:
        problems.append(Problem(field="entrypoint_id", message="no such entry point archive"))
    elif request.entry_point not in archive.entry_points:
        declared = [n for n, spec in archive.entry_points.items() if not spec.get("file")]
        problems.append(
            Problem(
                field="entry_point",
                message=f"the archive declares no entry point {request.entry_point!r} "
                f"(declared: {', '.join(sorted(declared)) or 'none'}), and has no such .py or "
                ".sh file to run",
            )
        )
    else:
        spec = EntryPointSpec.model_validate(archive.entry_points[request.entry_point])
        try:
            params = resolve_parameters(spec, request.params, deferred=deferred)
        except ProblemsError as exc:
            problems.extend(exc.problems)
        if queue is not None:
            problems.extend(await _environment_problems(session, settings, archive, request))
            problems.extend(await _download_problems(session, settings, spec, params, request))
        if archive.graph_text is not None:
            checked = await check_graph(archive.graph_text, session=session, registry=registry)
            problems.extend(checked.problems)
            pins = checked.pins
    dependencies, dependency_problems = await visible_dependencies(
        session=session, caller=caller, ids=request.depends_on
    )
    problems.extend(dependency_problems)
    readable: list[str] = []
    if experiment is not None and spec is not None:
        # The runs:/ and mlflow-artifacts:/ values of the group's other experiments, which the
        # job's tracking proxy is to let it read (asks MLflow: 503 when it is down).
        readable, outside = await readable_experiments(
            session=session,
            mlflow=mlflow,
            spec=spec,
            params=params,
            group_id=experiment.group_id,
            own_mlflow_experiment_id=experiment.mlflow_experiment_id,
        )
        problems.extend(outside)
    if problems:
        raise InvalidSubmission(f"{len(problems)} problem(s) in the submission", problems)
    assert experiment is not None and archive is not None

    now = utcnow()
    job = Job(
        experiment_id=experiment.id,
        group_id=experiment.group_id,
        entrypoint_id=archive.id,
        entry_point=request.entry_point,
        params=params,
        queue=request.queue,
        timeout_s=timeout_s,
        plugin_versions={name: pin.model_dump() for name, pin in pins.items()},
        max_retries=request.max_retries,
        retry_on_failure=request.retry_on_failure,
        retry_backoff_s=request.retry_backoff_s,
        callback_url=request.callback_url,
        limits=limits_row(request.limits),
        run_tags=run_tags,
        env_manager=request.env_manager,
        readable_experiments=readable or None,
        webhook_secret=new_webhook_secret() if request.callback_url else None,
        created_at=now,
        updated_at=now,
    )
    entry = entry_status(dependencies)
    await transitions.record_submission(session=session, job=job, at=now, status=entry)
    record_dependencies(session=session, job=job, dependencies=dependencies)
    if entry is JobStatus.QUEUED:
        enqueue_attempt(session=session, job=job, experiment=experiment, archive=archive)
    else:  # a dependency that ended unsuccessfully already skips it now
        await settle(session=session, job=job)
    return job


async def _environment_problems(
    session: AsyncSession, settings: ApiSettings, archive: EntryPointArchive, request: JobCreate
) -> list[Problem]:
    """Why the queue's live workers cannot build the environment the archive declares with the
    request's env_manager (none when no live worker announced what it builds)."""
    declared = DeclaredEnvironment.model_validate(archive.environment or {})
    seen_after = utcnow() - timedelta(seconds=settings.worker_liveness_s)
    support = await queue_repo.environment_support(session=session, seen_after=seen_after)
    return environment_problems(
        declared, request.env_manager, support.get(request.queue), queue=request.queue
    )


async def _download_problems(
    session: AsyncSession,
    settings: ApiSettings,
    spec: EntryPointSpec,
    params: dict[str, str],
    request: JobCreate,
) -> list[Problem]:
    """Why the queue's live workers do not download a remote path value (s3://, http(s)://)."""
    wanted = {
        name: params[name]
        for name, declared in spec.parameters.items()
        if declared.kind == "path" and name in params and worker_fetched(params[name])
    }
    if not wanted:
        return []
    seen_after = utcnow() - timedelta(seconds=settings.worker_liveness_s)
    support = await queue_repo.download_support(session=session, seen_after=seen_after)
    return [
        Problem(field=f"params.{name}", message=why)
        for name, value in wanted.items()
        if (why := download_refusal(value, support.get(request.queue), queue=request.queue))
    ]


def _limit_problems(limits: SandboxLimits, maxima: dict[str, int]) -> list[Problem]:
    """One problem per limit over the queue's maximum, named by its field."""
    found = []
    for sentence in limits.over(SandboxLimits.model_validate(maxima)):
        field, _, message = sentence.partition(": ")
        found.append(Problem(field=field, message=message))
    return found
