"""``theodolite submit`` and ``theodolite jobs ...``: run entry points and look at their jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from theodolite.cli.common import (
    DEFAULT_API_URL,
    EXIT_API_ERROR,
    ApiUrl,
    AsJson,
    Params,
    api_client,
    console,
    exit_code,
    is_uuid,
    parse_params,
    print_listing,
    print_result,
    resolve_experiment,
    status_console,
    table_of,
)
from theodolite.cli.follow import follow_job

jobs_app = typer.Typer(no_args_is_help=True, help="Jobs: list, show, logs, cancel, results.")

# The options ``mlflow run`` has too are spelled as it spells them: -e is the entry point, -P a
# parameter, --experiment-name / --experiment-id the experiment (--experiment: the older name).
ExperimentName = Annotated[
    str | None,
    typer.Option(
        "--experiment-name",
        "--experiment",
        help="Experiment name (created if missing) or id; else the default experiment.",
        show_default=False,
    ),
]
ExperimentId = Annotated[
    str | None,
    typer.Option("--experiment-id", help="The experiment's id.", show_default=False),
]
# With the experiment, what a submission runs (``submit``, ``run``, ``sweeps submit``);
# what_to_run resolves the experiment and the source.
Source = Annotated[str, typer.Argument(help="An entry point folder or archive, or its id.")]
Queue = Annotated[str, typer.Option("--queue", "-q", help="The queue to run on.")]
EntryPoint = Annotated[
    str,
    typer.Option(
        "--entry-point", "-e", help="Which entry point: a declared one, or a .py or .sh file."
    ),
]
EnvManagerOption = Annotated[
    str | None,
    typer.Option(
        "--env-manager",
        help="As mlflow run: local (the worker's environment, the declared one bypassed), uv or "
        "virtualenv (build python_env), conda; default: what the MLproject declares.",
        show_default=False,
    ),
]
# A listing's filter (``jobs list``, ``sweeps list``).
OfExperiment = Annotated[
    str | None,
    typer.Option("--experiment-name", "--experiment", help="Only this experiment's (name or id)."),
]
DEFAULT_EXPERIMENT = "default"
JobId = Annotated[str, typer.Argument(help="The job's id.")]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")
]


def resolve_entrypoint(client: Any, source: str) -> Any:
    """An entry point: a folder or archive is uploaded, anything else is taken as an id."""
    path = Path(source)
    if path.exists():
        entrypoint = client.upload_entrypoint(path)
        status_console.print(
            f"entry point [bold]{path.resolve().name}[/] {entrypoint.id} "
            f"(sha256 {entrypoint.sha256[:12]})"
        )
        return entrypoint
    if is_uuid(source):
        return client.get_entrypoint(source)
    status_console.print(
        f"[red]{source!r} is neither a folder, an archive nor an entry point id[/]"
    )
    raise typer.Exit(EXIT_API_ERROR)


def chosen_experiment(name: str | None, experiment_id: str | None) -> str:
    """The experiment --experiment-name or --experiment-id names (one of them at most)."""
    if name is not None and experiment_id is not None:
        raise typer.BadParameter(
            "give --experiment-name or --experiment-id, not both", param_hint="--experiment-id"
        )
    if experiment_id is not None:
        if not is_uuid(experiment_id):
            raise typer.BadParameter(
                f"{experiment_id!r} is not an experiment id", param_hint="--experiment-id"
            )
        return experiment_id
    return name if name is not None else DEFAULT_EXPERIMENT


def what_to_run(client: Any, experiment: str, source: str) -> tuple[Any, Any]:
    """A submission's experiment id (the experiment created when missing) and entry point id."""
    return (
        resolve_experiment(client, experiment, create=True).id,
        resolve_entrypoint(client, source).id,
    )


def submit(
    source: Source,
    param: Params = [],  # noqa: B006
    queue: Queue = "cpu",
    entry_point: EntryPoint = "main",
    experiment_name: ExperimentName = None,
    experiment_id: ExperimentId = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow the job to its end.")] = False,
    timeout_s: Annotated[
        int | None, typer.Option("--job-timeout", help="The job's own time limit, seconds.")
    ] = None,
    max_retries: Annotated[int, typer.Option(help="Retries of infrastructure failures.")] = 0,
    callback_url: Annotated[
        str | None, typer.Option(help="Called (Standard Webhooks) on each status change.")
    ] = None,
    depends_on: Annotated[
        list[str],
        typer.Option(
            "--depends-on",
            help="A job that must succeed first (repeatable); the job waits, and is skipped "
            "if one of them does not succeed.",
        ),
    ] = [],  # noqa: B006
    limit: Annotated[
        list[str],
        typer.Option(
            "--limit",
            help="A sandbox limit of this job, e.g. memory_bytes='4 GiB' or cpu_seconds=600 "
            "(repeatable; at most the queue's maximum).",
        ),
    ] = [],  # noqa: B006
    env_manager: EnvManagerOption = None,
    wait_timeout: Timeout = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Submit a job; with --wait, follow it live and exit with how it ended.

    Exit codes: 0 succeeded, 1 failed, 3 cancelled, 4 timed out, 6 skipped (a dependency did not
    succeed), 2 refused by the api.
    """
    params = parse_params(param)
    experiment = chosen_experiment(experiment_name, experiment_id)
    options: dict[str, object] = {}
    if depends_on:
        options["depends_on"] = depends_on
    if limit:
        options["limits"] = parse_params(limit)
    if env_manager:
        options["env_manager"] = env_manager
    with api_client(api_url) as client:
        job = client.submit_job(
            *what_to_run(client, experiment, source),
            entry_point=entry_point,
            params=params,
            queue=queue,
            timeout_s=timeout_s,
            max_retries=max_retries,
            callback_url=callback_url,
            **options,
        )
        status_console.print(f"job [bold]{job.id}[/] submitted to queue {job.queue}")
        if job.webhook_secret:
            status_console.print(f"callback signing secret (shown once): {job.webhook_secret}")
        if not wait:
            print_result(job, lambda j: console.print(str(j.id)), as_json=as_json)
            return
        final = follow_job(client, job, status_console, timeout_s=wait_timeout)
        print_result(final, show_outcome, as_json=as_json)
        raise typer.Exit(exit_code(final.status))


def run(
    source: Annotated[str, typer.Argument(help="A project folder or archive, or its id.")],
    entry_point: EntryPoint = "main",
    param: Params = [],  # noqa: B006
    experiment_name: ExperimentName = None,
    experiment_id: ExperimentId = None,
    queue: Queue = "cpu",
    timeout_s: Annotated[
        int | None, typer.Option("--job-timeout", help="The job's own time limit, seconds.")
    ] = None,
    env_manager: EnvManagerOption = None,
    wait_timeout: Timeout = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Run a project as ``mlflow run`` does: upload, submit, follow it live, exit with how it
    ended (``theodolite run . -e train.py -P alpha=0.5``).

    Exit codes: 0 succeeded, 1 failed, 3 cancelled, 4 timed out, 2 refused by the api.
    """
    submit(
        source,
        param=param,
        queue=queue,
        entry_point=entry_point,
        experiment_name=experiment_name,
        experiment_id=experiment_id,
        wait=True,
        timeout_s=timeout_s,
        env_manager=env_manager,
        wait_timeout=wait_timeout,
        as_json=as_json,
        api_url=api_url,
    )


def show_outcome(job: Any) -> None:
    colour = "green" if job.status == "succeeded" else "red"
    console.print(f"job {job.id} [bold {colour}]{job.status}[/]", highlight=False)
    if job.error:
        console.print(f"  {job.error}", highlight=False)
    if job.mlflow_run_url:
        console.print(f"  MLflow run: {job.mlflow_run_url}")


@jobs_app.command("list")
def list_jobs(
    experiment: OfExperiment = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Jobs, newest first."""
    with api_client(api_url) as client:
        experiment_id = resolve_experiment(client, experiment).id if experiment else None
        page = client.list_jobs(experiment_id=experiment_id, status=status, limit=limit)
    print_listing(
        page,
        ("id", "status", "queue", "entry point", "attempt", "created"),
        lambda job: (
            job.id,
            job.status,
            job.queue,
            job.entry_point,
            job.attempt,
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        ),
        title=f"jobs ({len(page.data)} of {page.count})",
        as_json=as_json,
    )


@jobs_app.command("show")
def show_job(job_id: JobId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """A job: parameters, history, MLflow run, log tail."""
    with api_client(api_url) as client:
        job = client.get_job(job_id)
    print_result(job, describe_job, as_json=as_json)


def describe_job(job: Any) -> None:
    """A job for a person: parameters, history, progress, error, MLflow run, log tail."""
    console.print(f"job [bold]{job.id}[/]  {job.status}  queue {job.queue}  attempt {job.attempt}")
    console.print(f"  entry point {job.entry_point} of {job.entrypoint_id}")
    for name, value in job.params.items():
        console.print(f"  {name} = {value}", highlight=False)
    console.print(
        table_of(
            job.history,
            ("status", "at", "detail"),
            lambda t: (t.status, f"{t.at:%H:%M:%S.%f}"[:-3], t.detail),
            "history",
        )
    )
    if job.progress is not None:
        fraction = f"{job.progress.fraction:.0%}" if job.progress.fraction is not None else ""
        console.print(
            f"  progress {fraction} {job.progress.step or ''} {job.progress.message or ''}"
        )
    if job.error:
        console.print(f"  [red]{job.error}[/]", highlight=False)
    if job.mlflow_run_url:
        console.print(f"  MLflow run: {job.mlflow_run_url}")
    if job.log_tail:
        console.print("\n".join(job.log_tail), highlight=False, markup=False)


@jobs_app.command("logs")
def job_logs(
    job_id: JobId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Until the job ends.")] = False,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """The job's output; with --follow, as it is written, until the job ends.

    With --follow the exit code says how the job ended (as for submit --wait).
    """
    with api_client(api_url) as client:
        if not follow:
            for line in client.job_logs(job_id, tail=tail):
                print(line)
            return
        status = None
        for event in client.job_events(job_id):
            if event.event == "log":
                for line in event.lines:
                    print(line, flush=True)
            elif event.event == "status":
                status = event.status
                status_console.print(f"[dim]-- {event.status}[/]")
            elif event.event == "end":
                status = event.status
    raise typer.Exit(exit_code(status or "failed"))


@jobs_app.command("cancel")
def cancel_job(job_id: JobId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Cancel a job: a queued one never starts, a running one is stopped."""
    with api_client(api_url) as client:
        job = client.cancel_job(job_id)
    print_result(
        job, lambda j: console.print(f"job {j.id}: {j.status} (cancel requested)"), as_json=as_json
    )


@jobs_app.command("metrics")
def job_metrics(job_id: JobId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Every metric of the job's MLflow run: latest value and how many steps."""
    with api_client(api_url) as client:
        metrics = client.metrics(job_id)
    print_listing(
        metrics,
        ("metric", "latest", "step", "points"),
        lambda m: (m.key, f"{m.latest.value:.6g}", m.latest.step, len(m.history)),
        title="metrics",
        as_json=as_json,
    )


@jobs_app.command("artifacts")
def job_artifacts(
    job_id: JobId,
    download: Annotated[str | None, typer.Option(help="Download this artifact path.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File or folder.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """The job's artifacts; with --download, fetch one (to --output, or the current folder)."""
    with api_client(api_url) as client:
        if download is not None:
            target = client.download_artifact(job_id, download, to=output or Path.cwd())
            console.print(f"{download} -> {target}")
            return
        artifacts = client.artifacts(job_id)
    print_listing(
        artifacts,
        ("path", "bytes", "download"),
        lambda a: (a.path, a.size_bytes, a.download_url or a.uri),
        title="artifacts",
        as_json=as_json,
    )
