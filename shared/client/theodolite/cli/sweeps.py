"""``theodolite sweeps ...``: a parameter grid as one job per point, its table and figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from theodolite.cli.common import (
    DEFAULT_API_URL,
    ApiUrl,
    AsJson,
    Params,
    api_client,
    console,
    parse_params,
    print_listing,
    print_result,
    resolve_experiment,
    status_console,
)
from theodolite.cli.jobs import (
    EntryPoint,
    ExperimentId,
    ExperimentName,
    OfExperiment,
    Queue,
    Source,
    chosen_experiment,
    what_to_run,
)

sweeps_app = typer.Typer(no_args_is_help=True, help="Parameter sweeps: submit, show, figure.")

SweepId = Annotated[str, typer.Argument(help="The sweep's id.")]


def _value(text: str) -> Any:
    """A grid value: a JSON number or boolean when it reads as one, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not name=v1,v2,...")
        grid[name] = [_value(v) for v in values.split(",") if v != ""]
    return grid


def show_sweep(sweep: Any) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(sweep.counts.items()))
    console.print(f"sweep [bold]{sweep.id}[/] {sweep.status} ({counts})")
    names = list(sweep.grid)
    table = Table(*names, "jobs", "statuses", *sweep.metrics, title="table")
    for row in sweep.table:
        cells = [str(row.values.get(n, "")) for n in names]
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(row.statuses.items()))
        metrics = []
        for metric in sweep.metrics:
            summary = row.metrics.get(metric)
            if summary is None:
                metrics.append("")
            elif summary.n > 1:
                metrics.append(f"{summary.mean:.4g} ± {summary.std:.2g} (n={summary.n})")
            else:
                metrics.append(f"{summary.mean:.4g}")
        table.add_row(*cells, str(row.jobs), statuses, *metrics)
    console.print(table)
    if sweep.figure_url:
        console.print(f"figure: {sweep.figure_url}")


@sweeps_app.command("submit")
def submit_sweep(
    source: Source,
    grid: Annotated[
        list[str], typer.Option("-G", "--grid", help="name=v1,v2,... (repeatable: a product).")
    ] = [],  # noqa: B006
    param: Params = [],  # noqa: B006
    seeds: Annotated[
        str | None, typer.Option(help="Seeds, e.g. 1,2,3: each point per seed.")
    ] = None,
    seed_param: Annotated[str, typer.Option(help="The parameter the seed goes to.")] = "seed",
    repeats: Annotated[int, typer.Option(help="Runs of each point.")] = 1,
    metric: Annotated[
        list[str], typer.Option("--metric", "-m", help="Metric of the table (repeatable).")
    ] = [],  # noqa: B006
    experiment_name: ExperimentName = None,
    experiment_id: ExperimentId = None,
    queue: Queue = "cpu",
    entry_point: EntryPoint = "main",
    name: Annotated[str | None, typer.Option(help="A name for the sweep.")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Until every job ends.")] = False,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Submit one job per point of the grid (x seeds x repeats): all of them, or none."""
    grid_values, params = parse_grid(grid), parse_params(param)
    try:
        seed_values = [int(s) for s in seeds.split(",")] if seeds else []
    except ValueError as exc:
        raise typer.BadParameter(
            f"{seeds!r} is not a list of integers", param_hint="--seeds"
        ) from exc
    with api_client(api_url, timeout=300) as client:
        sweep = client.submit_sweep(
            *what_to_run(client, chosen_experiment(experiment_name, experiment_id), source),
            grid_values,
            params=params,
            seeds=seed_values,
            seed_param=seed_param,
            repeats=repeats,
            metrics=metric,
            entry_point=entry_point,
            queue=queue,
            name=name,
        )
        status_console.print(f"sweep [bold]{sweep.id}[/]: {len(sweep.points)} jobs submitted")
        if wait:

            def progress(current: Any) -> None:
                counts = ", ".join(f"{n} {s}" for s, n in sorted(current.counts.items()))
                status_console.print(f"  {current.status}: {counts}")

            sweep = client.wait_sweep(sweep.id, on_change=progress)
    print_result(sweep, show_sweep, as_json=as_json)
    if wait:
        raise typer.Exit(0 if sweep.status == "succeeded" else 1)


@sweeps_app.command("show")
def show(sweep_id: SweepId, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """The sweep's status and table (each metric's mean and spread per grid point)."""
    with api_client(api_url, timeout=300) as client:
        sweep = client.get_sweep(sweep_id)
    print_result(sweep, show_sweep, as_json=as_json)


@sweeps_app.command("list")
def list_sweeps(
    experiment: OfExperiment = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Sweeps, newest first."""
    with api_client(api_url) as client:
        experiment_id = resolve_experiment(client, experiment).id if experiment else None
        page = client.list_sweeps(experiment_id=experiment_id, limit=200)
    print_listing(
        page,
        ("id", "name", "status", "jobs", "grid"),
        lambda sweep: (
            sweep.id,
            sweep.name,
            sweep.status,
            sum(sweep.counts.values()),
            "; ".join(f"{k}={','.join(map(str, v))}" for k, v in sweep.grid.items()),
        ),
        title=f"sweeps ({page.count})",
        as_json=as_json,
    )


@sweeps_app.command("figure")
def figure(
    sweep_id: SweepId,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the SVG.")] = Path(
        "sweep.svg"
    ),
    metric: Annotated[str | None, typer.Option(help="The metric (default: the first).")] = None,
    x: Annotated[str | None, typer.Option(help="The swept parameter on the x axis.")] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Write the finished sweep's figure (a metric against a swept parameter) as SVG."""
    with api_client(api_url, timeout=300) as client:
        svg = client.sweep_figure(sweep_id, metric=metric, x=x)
    output.write_text(svg)
    console.print(f"figure written to {output}")
