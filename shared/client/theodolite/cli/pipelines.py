"""``theodolite pipelines ...``: stages that feed each other (a stage's parameters may reference
what earlier stages produced, ``${train.run_id}``), written as a YAML file: submit it (``--wait``
follows the stages live), list, show and cancel pipelines."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from theodolite.cli.common import (
    DEFAULT_API_URL,
    EXIT_API_ERROR,
    EXIT_CODES,
    ApiUrl,
    AsJson,
    api_client,
    console,
    exit_code,
    print_listing,
    print_result,
    resolve_experiment,
    status_console,
)
from theodolite.cli.jobs import OfExperiment, Timeout, resolve_entrypoint

pipelines_app = typer.Typer(
    no_args_is_help=True, help="Pipelines: stages that feed each other; submit, list, show, cancel."
)

PipelineId = Annotated[str, typer.Argument(help="The pipeline's id.")]
JOBS_LISTED = 3  # a sweep stage's jobs beyond this many are counted, not listed
# Waiting gave up while the pipeline still runs: the code of a job that ran out of time.
EXIT_WAIT_TIMEOUT = EXIT_CODES["timed_out"]
STATUS_COLOURS = {"succeeded": "green", "failed": "red", "running": "cyan", "cancelled": "red"}


class SpecError(ValueError):
    """A pipeline file that cannot be submitted as it is."""


# --- the pipeline file -------------------------------------------------------------------------


def load_spec(path: Path) -> dict[str, Any]:
    """The pipeline file (YAML, or JSON, which YAML reads too): the api's PipelineCreate body,
    except that ``experiment`` may name the experiment and a stage's ``source`` its entry point
    folder or archive. ``name`` defaults to the file's name without its suffix."""
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read it: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"not YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError("it must be a mapping of experiment, name and stages")
    stages = spec.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise SpecError("`stages` must map each stage's name to the stage")
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            raise SpecError(f"stage {name!r} must be a mapping (source or entrypoint_id, params)")
    spec.setdefault("name", path.stem)
    return spec


def apply_overrides(spec: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """A copy of the spec with each ``stage.param=value`` set; the values stay text, as
    ``submit -P`` sends them (the api reads them as the entry point declares)."""
    spec = copy.deepcopy(spec)
    stages = spec["stages"]
    for pair in pairs:
        target, equals, value = pair.partition("=")
        stage, dot, param = target.partition(".")
        if not (equals and dot and stage and param):
            raise typer.BadParameter(f"{pair!r} is not stage.param=value", param_hint="-P")
        if stage not in stages:
            known = ", ".join(map(str, stages))
            raise typer.BadParameter(f"{pair!r}: no stage {stage!r} ({known})", param_hint="-P")
        # `params:` left empty in YAML reads as None.
        stages[stage]["params"] = {**(stages[stage].get("params") or {}), param: value}
    return spec


def resolve_spec(
    spec: dict[str, Any],
    folder: Path,
    *,
    experiment: str | None,
    experiment_id_of: Callable[[str], Any],
    entrypoint_id_of: Callable[[Path], Any],
) -> dict[str, Any]:
    """The body to submit: the experiment (``experiment``, else the file's ``experiment`` name
    or id) as ``experiment_id``, and each stage's ``source`` (relative to ``folder``, the file's
    own) as the ``entrypoint_id`` that ``entrypoint_id_of`` uploads it to, once per path."""
    body = copy.deepcopy(spec)
    in_file = body.pop("experiment", None)
    if experiment is None and in_file is not None and "experiment_id" in body:
        raise SpecError("give `experiment` or `experiment_id`, not both")
    chosen = experiment if experiment is not None else in_file
    if chosen is not None:
        body["experiment_id"] = str(experiment_id_of(str(chosen)))
    elif "experiment_id" not in body:
        raise SpecError("no experiment: give `experiment` (name or id) in the file or --experiment")
    uploaded: dict[Path, str] = {}
    for name, stage in body["stages"].items():
        source = stage.pop("source", None)
        if source is None:
            continue  # an entrypoint_id, or the api's problem list says what is missing
        if "entrypoint_id" in stage:
            raise SpecError(f"stage {name!r}: give `source` or `entrypoint_id`, not both")
        path = (folder / Path(str(source)).expanduser()).resolve()
        if not path.exists():
            raise SpecError(f"stage {name!r}: source {source} ({path}) does not exist")
        if path not in uploaded:
            uploaded[path] = str(entrypoint_id_of(path))
        stage["entrypoint_id"] = uploaded[path]
    return body


# --- showing a pipeline ------------------------------------------------------------------------


def _status(status: str) -> Text:
    return Text(status, style=f"bold {STATUS_COLOURS.get(status, 'yellow')}")


def _jobs_cell(stage: Any) -> str:
    """A stage's jobs: their ids (with statuses when there are several), or a count by status."""
    if len(stage.jobs) > JOBS_LISTED:
        counts = Counter(job.status for job in stage.jobs)
        return f"{len(stage.jobs)} jobs: " + ", ".join(
            f"{n} {status}" for status, n in sorted(counts.items())
        )
    if len(stage.jobs) == 1:
        return str(stage.jobs[0].job_id)
    return "\n".join(f"{job.job_id} {job.status}" for job in stage.jobs)


def _runs_cell(stage: Any) -> str:
    runs = [job.mlflow_run_id for job in stage.jobs if job.mlflow_run_id]
    if len(stage.jobs) > JOBS_LISTED:
        return f"{len(runs)} runs" if runs else ""
    return "\n".join(runs)


def stage_table(pipeline: Any) -> Table:
    """The pipeline's stages, upstream first: what each waits for, its status, jobs and runs."""
    title = Text.assemble(f"pipeline {pipeline.name} {pipeline.id}  ", _status(pipeline.status))
    table = Table("stage", "after", "status", "jobs", "MLflow run", title=title)
    for stage in pipeline.stages:
        table.add_row(
            stage.name,
            ", ".join(stage.depends_on),
            _status(stage.status),
            _jobs_cell(stage),
            _runs_cell(stage),
        )
    return table


def describe_pipeline(pipeline: Any) -> None:
    """A pipeline for a person: its stage table, its jobs' errors, its MLflow parent run."""
    console.print(stage_table(pipeline))
    for stage in pipeline.stages:
        for job in stage.jobs:
            if job.error:
                console.print(f"  [red]{stage.name} {job.job_id}: {job.error}[/]", highlight=False)
    if pipeline.mlflow_run_url:
        console.print(f"  MLflow run: {pipeline.mlflow_run_url}")


class StageChanges:
    """What changed since the last look, as plain lines (for logs and CI, not a terminal)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, list[str]]] = {}
        self.status: str | None = None

    def lines(self, pipeline: Any) -> list[str]:
        said = []
        for stage in pipeline.stages:
            now = (stage.status, [str(job.job_id) for job in stage.jobs])
            if self.seen.get(stage.name) == now:
                continue
            self.seen[stage.name] = now
            jobs = f" ({_jobs_cell(stage)})".replace("\n", "; ") if stage.jobs else ""
            said.append(f"stage {stage.name}: {stage.status}{jobs}")
        if pipeline.status != self.status:
            self.status = pipeline.status
            said.append(f"pipeline: {pipeline.status}")
        return said


def follow_pipeline(
    client: Any, pipeline: Any, on: Console, *, poll_s: float, timeout_s: float | None
) -> Any:
    """Follow the pipeline to its end (a live table on a terminal, lines otherwise); the end."""
    if not on.is_terminal:
        changes = StageChanges()

        def say(current: Any) -> None:
            for line in changes.lines(current):
                on.print(line, highlight=False, markup=False)

        return client.wait_pipeline(pipeline.id, poll_s=poll_s, timeout_s=timeout_s, on_change=say)
    with Live(stage_table(pipeline), console=on, refresh_per_second=4) as live:
        return client.wait_pipeline(
            pipeline.id,
            poll_s=poll_s,
            timeout_s=timeout_s,
            on_change=lambda current: live.update(stage_table(current)),
        )


def _refuse(path: Path, error: SpecError) -> NoReturn:
    status_console.print(f"[red]{path}: {error}[/]", highlight=False)
    raise typer.Exit(EXIT_API_ERROR)


# --- commands ----------------------------------------------------------------------------------


@pipelines_app.command("submit")
def submit_pipeline(
    spec_file: Annotated[
        Path,
        typer.Argument(help="The pipeline file (YAML): experiment, name, stages.", dir_okay=False),
    ],
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment-name",
            "--experiment",
            help="Experiment name (created if missing) or id, instead of the file's.",
        ),
    ] = None,
    param: Annotated[
        list[str],
        typer.Option(
            "-P", "--param", help="stage.param=value (repeatable), instead of the file's value."
        ),
    ] = [],  # noqa: B006
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the stages live to the end.")
    ] = False,
    poll_s: Annotated[float, typer.Option("--poll", help="Seconds between looks.")] = 2.0,
    wait_timeout: Timeout = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Submit a pipeline file (stage sources are uploaded first); with --wait, follow its stages
    live and exit with how it ended.

    Exit codes: 0 succeeded, 1 failed, 3 cancelled, 4 still running after --timeout, 2 refused
    (every problem the api found, or a file that cannot be submitted).
    """
    try:
        spec = apply_overrides(load_spec(spec_file), param)
    except SpecError as exc:
        _refuse(spec_file, exc)
    with api_client(api_url, timeout=300) as client:
        try:
            body = resolve_spec(
                spec,
                spec_file.parent,
                experiment=experiment,
                experiment_id_of=lambda name: resolve_experiment(client, name, create=True).id,
                entrypoint_id_of=lambda path: resolve_entrypoint(client, str(path)).id,
            )
        except SpecError as exc:
            _refuse(spec_file, exc)
        pipeline = client.submit_pipeline(body)
        status_console.print(
            f"pipeline [bold]{pipeline.name}[/] {pipeline.id}: {len(pipeline.stages)} stages"
        )
        if not wait:
            print_result(pipeline, lambda p: console.print(str(p.id)), as_json=as_json)
            return
        try:
            final = follow_pipeline(
                client, pipeline, status_console, poll_s=poll_s, timeout_s=wait_timeout
            )
        except TimeoutError as exc:
            status_console.print(f"[red]{exc}[/]", highlight=False)
            raise typer.Exit(EXIT_WAIT_TIMEOUT) from exc
    print_result(final, describe_pipeline, as_json=as_json)
    raise typer.Exit(exit_code(final.status))


@pipelines_app.command("list")
def list_pipelines(
    experiment: OfExperiment = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Pipelines, newest first."""
    with api_client(api_url) as client:
        experiment_id = resolve_experiment(client, experiment).id if experiment else None
        page = client.list_pipelines(experiment_id=experiment_id, limit=limit)
    print_listing(
        page,
        ("id", "name", "status", "MLflow run", "created"),
        lambda p: (p.id, p.name, p.status, p.mlflow_run_id, f"{p.created_at:%Y-%m-%d %H:%M:%S}"),
        title=f"pipelines ({len(page.data)} of {page.count})",
        as_json=as_json,
    )


@pipelines_app.command("show")
def show_pipeline(
    pipeline_id: PipelineId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL
) -> None:
    """A pipeline: its stages with their status, jobs and MLflow runs."""
    with api_client(api_url) as client:
        pipeline = client.get_pipeline(pipeline_id)
    print_result(pipeline, describe_pipeline, as_json=as_json)


@pipelines_app.command("cancel")
def cancel_pipeline(
    pipeline_id: PipelineId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL
) -> None:
    """Cancel a pipeline: its stages not yet ended are cancelled, those waiting never start."""
    with api_client(api_url) as client:
        pipeline = client.cancel_pipeline(pipeline_id)
    print_result(
        pipeline,
        lambda p: console.print(f"pipeline {p.id}: {p.status} (cancel requested)"),
        as_json=as_json,
    )
