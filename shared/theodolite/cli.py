"""``theodolite``: the command line. ``stack`` runs the local stack; ``demo`` runs an example."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Theodolite: ML security experiments, reproducibly.")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack (no Docker needed).")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
plugins_app = typer.Typer(no_args_is_help=True, help="Task plugins in the registry.")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(plugins_app, name="plugins")
console = Console()

StateDir = Annotated[Path, typer.Option(help="Where the stack keeps its data, logs and pids.")]
ApiUrl = Annotated[str, typer.Option(envvar="THEODOLITE_API_URL", help="The api's base URL.")]


@stack_app.command("up")
def stack_up(state_dir: StateDir = Path(".stack")) -> None:
    """Start the S3 server, MLflow and Prefect servers, api and a CPU worker on 127.0.0.1."""
    from theodolite.devstack import StackConfig, StackError, up

    config = StackConfig(state_dir=state_dir)
    try:
        up(config, say=lambda line: console.print(f"[cyan]starting[/] {line}"))
    except StackError as exc:
        console.print(f"[red]the stack did not start:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]stack up[/]; logs in {state_dir / 'logs'}")
    console.print(f"  api + Swagger UI  {config.api_url}/docs")
    console.print(f"  MLflow UI         {config.mlflow_url}")
    console.print(f"  Prefect UI        {config.prefect_url}")


@stack_app.command("down")
def stack_down(state_dir: StateDir = Path(".stack")) -> None:
    """Stop every process of the local stack (data stays in the state folder)."""
    from theodolite.devstack import StackConfig, down

    down(StackConfig(state_dir=state_dir), say=lambda line: console.print(line))


@plugins_app.command("push")
def plugins_push(
    sources: Annotated[list[Path], typer.Argument(help="Plugin folders, wheels or archives.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
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
            console.print(f"{source}: {published['name']}=={published['version']} published")
    raise typer.Exit(1 if failed else 0)


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str, typer.Option(envvar="THEODOLITE_DB_URL")] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/theodolite"
    ),
) -> None:
    """Apply every migration."""
    from theodolite.db.migrate import upgrade

    upgrade(url)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not name=value")
        params[name] = value
    return params


@app.command()
def demo(
    example: Annotated[Path, typer.Argument(help="An entry point folder.")] = Path(
        "examples/digits-evasion"
    ),
    param: Annotated[list[str], typer.Option("-P", help="name=value, repeatable.")] = [],  # noqa: B006
    experiment: Annotated[str, typer.Option(help="Experiment name.")] = "quickstart",
    api_url: ApiUrl = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job as JSON.")] = False,
    prefect_url: Annotated[
        str, typer.Option(envvar="THEODOLITE_PREFECT_UI_URL", help="The Prefect UI's URL.")
    ] = "http://127.0.0.1:4200",
) -> None:
    """Upload an example, submit it, follow it to the end and show its metrics."""
    from theodolite.client import ApiError, TheodoliteClient

    with TheodoliteClient(api_url) as client:
        try:
            exp = client.ensure_experiment(experiment)
            entrypoint = client.upload_entrypoint(example)
            console.print(f"entry point [bold]{example.name}[/] sha256 {entrypoint['sha256'][:12]}")
            job = client.submit_job(
                experiment_id=exp["id"],
                entrypoint_id=entrypoint["id"],
                params=_parse_params(param),
            )
        except ApiError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc
        console.print(f"job {job['id']} submitted")

        def show(changed: dict) -> None:
            console.print(f"  status: [bold]{changed['status']}[/]")

        final = client.wait(job["id"], on_change=show)
        if as_json:
            print(json.dumps(final, indent=2))
        metrics = client.metrics(job["id"])
        results = [m for m in metrics if not m["key"].startswith("step.")]
        if results:
            table = Table(title="metrics")
            table.add_column("metric")
            table.add_column("value", justify="right")
            for metric in results:
                table.add_row(metric["key"], f"{metric['latest']['value']:.4f}")
            console.print(table)
        steps = [m for m in metrics if m["key"].startswith("step.")]
        if steps:
            timings = ", ".join(
                f"{m['key'].removeprefix('step.').removesuffix('.duration_s')} "
                f"{m['latest']['value']:.2f}s"
                for m in steps
            )
            console.print(f"step durations: {timings}")
        for artifact in client.artifacts(job["id"]):
            console.print(f"  artifact {artifact['path']}  {artifact['download_url']}")
        if final["status"] != "succeeded":
            console.print(f"[red]job {final['status']}:[/] {final.get('error')}")
            console.print("\n".join(final.get("log_tail", [])))
        console.print(f"Swagger UI: {api_url}/docs")
        if final.get("mlflow_run_url"):
            console.print(f"MLflow UI:  {final['mlflow_run_url']}")
        console.print(f"Prefect UI: {prefect_url} (graph jobs: flow run job-{job['id']})")
        raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@app.command("run-graph")
def run_graph(
    graph: Annotated[Path, typer.Argument(help="The graph.yaml to run.", exists=True)],
    param: Annotated[list[str], typer.Option("-P", help="name=value, repeatable.")] = [],  # noqa: B006
    plugin: Annotated[
        list[str],
        typer.Option("--plugin", help="name=module: a plugin not installed as a package."),
    ] = [],  # noqa: B006
) -> None:
    """Validate a task graph and run it as a Prefect flow."""
    from theodolite.graphs.command import run_graph_file

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # --plugin modules beside the graph
    raise typer.Exit(run_graph_file(graph, _parse_params(param), _parse_params(plugin)))


def main() -> None:  # pragma: no cover
    sys.exit(app())
