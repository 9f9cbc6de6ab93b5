"""``theodolite stack up/down``: the local stack. Registered on the client's command line through
the ``theodolite.cli`` entry point group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from theodolite.cli.common import console

stack_app = typer.Typer(no_args_is_help=True, help="The local stack (no Docker needed).")

StateDir = Annotated[Path, typer.Option(help="Where the stack keeps its data, logs and pids.")]


@stack_app.command("up")
def stack_up(state_dir: StateDir = Path(".stack")) -> None:
    """Start the S3 server, MLflow and Prefect servers, api and a CPU worker on 127.0.0.1."""
    from theodolite.client.credentials import save_key
    from theodolite.devstack import StackConfig, StackError, up

    config = StackConfig(state_dir=state_dir)

    def keep_admin_key(key: str) -> None:
        # Printed this once; kept where the client and the command line look for it.
        path = save_key(config.api_url, key)
        console.print(f"[green]administrator created[/]; their API key (kept in {path}):")
        print(key)

    try:
        up(
            config,
            say=lambda line: console.print(f"[cyan]starting[/] {line}"),
            on_admin_key=keep_admin_key,
        )
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


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
