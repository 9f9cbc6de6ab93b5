"""``theodolite db upgrade``: apply the schema's migrations. Registered on the client's command
line through the ``theodolite.cli`` entry point group."""

from __future__ import annotations

from typing import Annotated

import typer

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str, typer.Option(envvar="THEODOLITE_DB_URL")] = (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/theodolite"
    ),
) -> None:
    """Apply every migration."""
    from theodolite.db.migrate import upgrade

    upgrade(url)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
