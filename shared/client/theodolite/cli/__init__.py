"""``theodolite``: the command line. ``submit`` runs an entry point (``--wait`` follows it live),
``run`` does it all at once as ``mlflow run`` does,
``jobs``, ``experiments``, ``entrypoints``, ``plugins``, ``queues``, ``sweeps`` and ``webhooks``
look after the rest; ``--json`` everywhere for scripts.

Other distributions add commands through the ``theodolite.cli`` entry point group (a function
taking the app): the server core adds ``db`` and ``run-graph``, the development tooling
``stack``. The client itself imports none of them.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Annotated

import typer

from theodolite.cli.admin import admin_app, login, whoami
from theodolite.cli.common import options
from theodolite.cli.demo import demo
from theodolite.cli.jobs import jobs_app, run, submit
from theodolite.cli.pipelines import pipelines_app
from theodolite.cli.resources import (
    entrypoints_app,
    experiments_app,
    plugins_app,
    queues,
)
from theodolite.cli.sweeps import sweeps_app
from theodolite.cli.webhooks import webhooks_app

EXTENSION_GROUP = "theodolite.cli"
log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Theodolite: ML security experiments, reproducibly.")


@app.callback()
def _options(
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="THEODOLITE_API_KEY",
            help="The API key; else THEODOLITE_API_KEY, else the key `theodolite login` kept.",
            show_default=False,
        ),
    ] = None,
) -> None:
    options.api_key = api_key


app.add_typer(admin_app, name="admin")
app.command()(login)
app.command()(whoami)
app.add_typer(experiments_app, name="experiments")
app.add_typer(entrypoints_app, name="entrypoints")
app.add_typer(jobs_app, name="jobs")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(plugins_app, name="plugins")
app.add_typer(sweeps_app, name="sweeps")
app.add_typer(webhooks_app, name="webhooks")
app.command()(submit)
app.command()(run)
app.command()(queues)
app.command()(demo)


def add_extensions(target: typer.Typer) -> list[str]:
    """Let installed distributions add their commands; the names of those added."""
    added = []
    for extension in sorted(entry_points(group=EXTENSION_GROUP), key=lambda e: e.name):
        try:
            extension.load()(target)
        except Exception as exc:  # a broken extension must not take the client down with it
            log.warning("theodolite: command %r not loaded: %s", extension.name, exc)
            continue
        added.append(extension.name)
    return added


add_extensions(app)


def main() -> None:  # pragma: no cover
    sys.exit(app())
