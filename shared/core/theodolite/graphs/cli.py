"""``theodolite run-graph``: validate a task graph and run it as a Prefect flow, locally, with no
testbed service. Registered on the client's command line through the ``theodolite.cli`` entry
point group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def _pairs(values: list[str]) -> dict[str, str]:
    split = {value: value.partition("=") for value in values}
    bad = [value for value, (name, sep, _) in split.items() if not (name and sep)]
    if bad:
        raise typer.BadParameter(f"not name=value: {', '.join(map(repr, bad))}")
    return {name: value for name, _, value in split.values()}


def run_graph(
    graph: Annotated[Path, typer.Argument(help="The graph.yaml to run.", exists=True)],
    param: Annotated[
        list[str], typer.Option("-P", "--param", help="name=value, repeatable.", show_default=False)
    ] = [],  # noqa: B006
    plugin: Annotated[
        list[str],
        typer.Option("--plugin", help="name=module: a plugin not installed as a package."),
    ] = [],  # noqa: B006
) -> None:
    """Validate a task graph and run it as a Prefect flow."""
    from theodolite.graphs.command import run_graph_file

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # --plugin modules beside the graph
    raise typer.Exit(run_graph_file(graph, _pairs(param), _pairs(plugin)))


def register(app: typer.Typer) -> None:
    app.command("run-graph")(run_graph)
