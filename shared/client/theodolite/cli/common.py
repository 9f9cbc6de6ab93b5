"""What every command shares: the api URL option, the client, JSON output, errors, exit codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console()
# Progress and live displays go to stderr, so ``--json`` output on stdout stays clean.
status_console = Console(stderr=True)

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="THEODOLITE_API_URL", help="The api's base URL.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
Params = Annotated[
    list[str], typer.Option("-P", "--param", help="name=value, repeatable.", show_default=False)
]
DEFAULT_API_URL = "http://127.0.0.1:8000"

# Exit codes: 0 the job succeeded; the others name how it ended; 2 the api refused.
EXIT_CODES = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 3,
    "timed_out": 4,
    "lost": 5,
    "skipped": 6,
}
EXIT_API_ERROR = 2


def exit_code(status: str) -> int:
    return EXIT_CODES.get(status, 1)


@dataclass
class Options:
    """What ``theodolite``'s own options chose, for every command of this run."""

    api_key: str | None = None


options = Options()


@contextmanager
def api_client(api_url: str, timeout: float = 60.0) -> Iterator[Any]:
    """A client whose ApiError ends the command with the api's problem, exit code 2."""
    from theodolite.client import ApiError, TheodoliteClient

    with TheodoliteClient(api_url, timeout=timeout, api_key=options.api_key) as client:
        try:
            yield client
        except ApiError as exc:
            status_console.print(f"[red]{exc}[/]", highlight=False)
            raise typer.Exit(EXIT_API_ERROR) from exc


def print_json(value: Any) -> None:
    """A model, or a list of models, as JSON on stdout."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    print(json.dumps(value, indent=2, default=str))


Cells = Callable[[Any], Sequence[object]]  # an item's values, one per column


def table_of(rows: Iterable[Any], headers: Sequence[str], cells: Cells, title: str) -> Table:
    """A table, one row per item: ``cells`` gives an item's values, None shown empty."""
    table = Table(*headers, title=title)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in cells(row)))
    return table


def print_result(value: Any, describe: Callable[[Any], object], *, as_json: bool) -> None:
    """What a command prints of its answer: JSON with ``--json``, else ``describe(value)``."""
    if as_json:
        print_json(value)
    else:
        describe(value)


def print_listing(
    found: Any,
    headers: Sequence[str],
    cells: Cells,
    *,
    title: str,
    as_json: bool,
) -> None:
    """What a listing command prints: JSON with ``--json``, else a table of its items."""
    rows = getattr(found, "data", found)  # a page's items, or the list itself
    print_result(
        found, lambda _: console.print(table_of(rows, headers, cells, title)), as_json=as_json
    )


def list_command(
    api_url: str,
    fetch: Callable[[Any], Any],
    headers: Sequence[str],
    cells: Cells,
    *,
    title: str,
    as_json: bool,
) -> None:
    """The whole of a listing command: ``fetch(client)`` gives a page or a list, printed as a
    table titled ``title`` (``{count}`` in it: how many there are in all)."""
    with api_client(api_url) as client:
        found = fetch(client)
    count = getattr(found, "count", None)
    shown = title.format(count=len(found) if count is None else count)
    print_listing(found, headers, cells, title=shown, as_json=as_json)


def create_command(api_url: str, create: Callable[[Any], Any], noun: str, *, as_json: bool) -> None:
    """The whole of a command that makes one named thing: ``create(client)``, then its name and
    id (or its JSON)."""
    with api_client(api_url) as client:
        made = create(client)
    print_result(made, lambda m: console.print(f"{noun} {m.name}: {m.id}"), as_json=as_json)


def parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not name=value")
        params[name] = value
    return params


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def resolve_experiment(client: Any, name_or_id: str, *, create: bool = False) -> Any:
    """An experiment by id or name (created when missing, with ``create``)."""
    if is_uuid(name_or_id):
        return client.get_experiment(name_or_id)
    if create:
        return client.ensure_experiment(name_or_id)
    # The command line is part of the client: it may use the lookup the client keeps private.
    found = client._find_experiment(name_or_id)
    if found is None:
        status_console.print(f"[red]no experiment {name_or_id!r}[/]")
        raise typer.Exit(EXIT_API_ERROR)
    return found
