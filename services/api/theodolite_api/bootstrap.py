"""``python -m theodolite_api.bootstrap``: the first administrator and their key, straight in the
database (before anyone can call the api). Does nothing once an administrator exists, so a
deployment may run it on every start."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from theodolite.db.engine import create_engine, create_session_factory
from theodolite.db.identity_tables import DEFAULT_GROUP
from theodolite_api.auth.accounts import bootstrap_admin
from theodolite_api.settings import ApiSettings

cli = typer.Typer(add_completion=False)


async def _bootstrap(settings: ApiSettings, name: str, group: str) -> str | None:
    engine = create_engine(settings.db)
    try:
        async with create_session_factory(engine)() as session:
            made = await bootstrap_admin(session=session, name=name, group=group)
            await session.commit()
    finally:
        await engine.dispose()
    return None if made is None else made[1]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (made so before anything is in it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


@cli.command()
def main(
    key_file: Annotated[Path, typer.Option(help="Where the key is written (mode 0600).")],
    name: Annotated[str, typer.Option(help="The administrator's user name.")] = "admin",
    group: Annotated[str, typer.Option(help="A group they administer.")] = DEFAULT_GROUP,
) -> None:
    """Create the first administrator with an admin key, if there is no administrator yet."""
    key = asyncio.run(_bootstrap(ApiSettings(), name, group))
    if key is None:
        typer.echo("an administrator exists already: no key made")
        return
    write_private(key_file, key + "\n")
    typer.echo(f"administrator {name!r} created; their key is in {key_file} (only you can read it)")


if __name__ == "__main__":
    cli()
