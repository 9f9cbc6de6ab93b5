"""``theodolite demo``: an example end to end against a running api."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from theodolite.cli.common import (
    DEFAULT_API_URL,
    ApiUrl,
    Params,
    api_client,
    console,
    exit_code,
    parse_params,
    print_json,
)


def demo(
    example: Annotated[Path, typer.Argument(help="An entry point folder.")] = Path(
        "examples/digits-evasion"
    ),
    param: Params = [],  # noqa: B006
    experiment: Annotated[str, typer.Option(help="Experiment name.")] = "quickstart",
    api_url: ApiUrl = DEFAULT_API_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job as JSON.")] = False,
    prefect_url: Annotated[
        str, typer.Option(envvar="THEODOLITE_PREFECT_UI_URL", help="The Prefect UI's URL.")
    ] = "http://127.0.0.1:4200",
) -> None:
    """Upload an example, submit it, follow it to the end and show its metrics."""
    with api_client(api_url) as client:
        exp = client.ensure_experiment(experiment)
        entrypoint = client.upload_entrypoint(example)
        console.print(f"entry point [bold]{example.name}[/] sha256 {entrypoint.sha256[:12]}")
        job = client.submit_job(exp.id, entrypoint.id, params=parse_params(param))
        console.print(f"job {job.id} submitted")

        def show(event: Any) -> None:
            if event.event == "status":
                console.print(f"  status: [bold]{event.status}[/]")

        final = client.wait(job.id, on_event=show)
        if as_json:
            print_json(final)
        metrics = client.metrics(job.id)
        results = [m for m in metrics if not m.key.startswith("step.")]
        if results:
            table = Table(title="metrics")
            table.add_column("metric")
            table.add_column("value", justify="right")
            for metric in results:
                table.add_row(metric.key, f"{metric.latest.value:.4f}")
            console.print(table)
        steps = [m for m in metrics if m.key.startswith("step.")]
        if steps:
            timings = ", ".join(
                f"{m.key.removeprefix('step.').removesuffix('.duration_s')} {m.latest.value:.2f}s"
                for m in steps
            )
            console.print(f"step durations: {timings}")
        for artifact in client.artifacts(job.id):
            console.print(f"  artifact {artifact.path}  {artifact.download_url or artifact.uri}")
        if final.status != "succeeded":
            console.print(f"[red]job {final.status}:[/] {final.error}")
            console.print("\n".join(final.log_tail))
        console.print(f"Swagger UI: {api_url}/docs")
        if final.mlflow_run_url:
            console.print(f"MLflow UI:  {final.mlflow_run_url}")
        console.print(f"Prefect UI: {prefect_url} (graph jobs: flow run job-{job.id})")
        raise typer.Exit(exit_code(final.status))
