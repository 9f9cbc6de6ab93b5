"""``theodolite``: the command line. ``stack`` runs the local stack, ``submit`` runs an entry
point (``--wait`` follows it live), ``jobs``, ``experiments``, ``entrypoints``, ``plugins``,
``queues``, ``sweeps`` and ``webhooks`` look after the rest; ``--json`` everywhere for scripts."""

from __future__ import annotations

import sys

import typer

from theodolite.cli.demo import demo, run_graph
from theodolite.cli.jobs import jobs_app, submit
from theodolite.cli.resources import (
    entrypoints_app,
    experiments_app,
    plugins_app,
    queues,
)
from theodolite.cli.stack import db_app, stack_app
from theodolite.cli.sweeps import sweeps_app
from theodolite.cli.webhooks import webhooks_app

app = typer.Typer(no_args_is_help=True, help="Theodolite: ML security experiments, reproducibly.")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(experiments_app, name="experiments")
app.add_typer(entrypoints_app, name="entrypoints")
app.add_typer(jobs_app, name="jobs")
app.add_typer(plugins_app, name="plugins")
app.add_typer(sweeps_app, name="sweeps")
app.add_typer(webhooks_app, name="webhooks")
app.command()(submit)
app.command()(queues)
app.command()(demo)
app.command("run-graph")(run_graph)


def main() -> None:  # pragma: no cover
    sys.exit(app())
