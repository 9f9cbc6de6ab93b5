"""``theodolite experiments``, ``entrypoints``, ``plugins``, ``queues``: the things jobs use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from theodolite.cli.common import (
    DEFAULT_API_URL,
    ApiUrl,
    AsJson,
    api_client,
    console,
    create_command,
    list_command,
    print_result,
    status_console,
)

experiments_app = typer.Typer(no_args_is_help=True, help="Experiments: list and create.")
entrypoints_app = typer.Typer(no_args_is_help=True, help="Entry points: push and list.")
plugins_app = typer.Typer(no_args_is_help=True, help="Task plugins in the registry.")


@experiments_app.command("list")
def list_experiments(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Experiments, newest first."""
    list_command(
        api_url,
        lambda client: client.list_experiments(limit=limit),
        ("id", "name", "description", "MLflow"),
        lambda e: (e.id, e.name, e.description, e.mlflow_url),
        title="experiments ({count})",
        as_json=as_json,
    )


@experiments_app.command("create")
def create_experiment(
    name: Annotated[str, typer.Argument(help="A unique name.")],
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Create an experiment (and its MLflow experiment)."""
    create_command(
        api_url, lambda c: c.create_experiment(name, description), "experiment", as_json=as_json
    )


@entrypoints_app.command("push")
def push_entrypoint(
    source: Annotated[Path, typer.Argument(help="An entry point folder or archive.", exists=True)],
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Upload an entry point (a folder is packed reproducibly: the same files, the same id)."""
    with api_client(api_url) as client:
        entrypoint = client.upload_entrypoint(source)
    print_result(entrypoint, describe_entrypoint, as_json=as_json)


def describe_entrypoint(entrypoint: Any) -> None:
    """An uploaded entry point: its declared entry points and any problem of its graph."""
    console.print(f"entry point {entrypoint.id} (sha256 {entrypoint.sha256[:12]})")
    for declared in entrypoint.entry_points:
        params = ", ".join(
            f"{p.name}: {p.type}" + ("" if p.required else f" = {p.default}")
            for p in declared.parameters
        )
        console.print(f"  {declared.name}({params})", highlight=False)
        for warning in declared.warnings:
            status_console.print(f"  [yellow]{declared.name}: {warning}[/]", highlight=False)
    if entrypoint.runnable_files:
        files = ", ".join(entrypoint.runnable_files)
        console.print(f"  files runnable with -e: {files}", highlight=False)
    if entrypoint.graph is not None and not entrypoint.graph.valid:
        for problem in entrypoint.graph.problems:
            status_console.print(f"  [yellow]graph {problem.field}: {problem.message}[/]")


@entrypoints_app.command("list")
def list_entrypoints(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Uploaded entry points, newest first."""
    list_command(
        api_url,
        lambda client: client.list_entrypoints(limit=200),
        ("id", "project", "entry points", "sha256"),
        lambda p: (p.id, p.project_name, ", ".join(e.name for e in p.entry_points), p.sha256[:12]),
        title="entry points ({count})",
        as_json=as_json,
    )


@plugins_app.command("push")
def plugins_push(
    sources: Annotated[list[Path], typer.Argument(help="Plugin folders, wheels or archives.")],
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Publish plugins (a folder is packed as a source archive); the same bytes again are a
    no-op, the same version with other bytes is refused."""
    from theodolite.client import ApiError, TheodoliteClient

    failed = False
    with TheodoliteClient(api_url, timeout=600) as client:
        for source in sources:
            try:
                published = client.push_plugin(source)
            except ApiError as exc:
                console.print(f"[red]{source}:[/] {exc}")
                failed = True
                continue
            console.print(f"{source}: {published.name}=={published.version} published")
    raise typer.Exit(1 if failed else 0)


@plugins_app.command("list")
def plugins_list(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Published plugins and their versions."""
    list_command(
        api_url,
        lambda client: client.plugins(),
        ("plugin", "latest", "versions"),
        lambda p: (p.name, p.latest_version or "(yanked)", ", ".join(p.versions)),
        title="plugins",
        as_json=as_json,
    )


def queues(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Queues: live workers and waiting jobs."""
    list_command(
        api_url,
        lambda client: client.queues(),
        ("queue", "live workers", "waiting jobs", "note"),
        lambda q: (
            q.name,
            q.live_workers,
            "?" if q.waiting_jobs is None else q.waiting_jobs,
            "no live worker serves it" if q.waiting_for_worker else "",
        ),
        title="queues",
        as_json=as_json,
    )
