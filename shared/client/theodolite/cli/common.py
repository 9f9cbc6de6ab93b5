"""What every command shares: the api URL option, the client, JSON output, errors, exit codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

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
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 3, "timed_out": 4, "lost": 5}
EXIT_API_ERROR = 2


def exit_code(status: str) -> int:
    return EXIT_CODES.get(status, 1)


@contextmanager
def api_client(api_url: str, timeout: float = 60.0) -> Iterator[Any]:
    """A client whose ApiError ends the command with the api's problem, exit code 2."""
    from theodolite.client import ApiError, TheodoliteClient

    with TheodoliteClient(api_url, timeout=timeout) as client:
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
    offset = 0
    while True:
        page = client.list_experiments(limit=500, offset=offset)
        for experiment in page.data:
            if experiment.name == name_or_id:
                return experiment
        offset += len(page.data)
        if not page.data or offset >= page.count:
            status_console.print(f"[red]no experiment {name_or_id!r}[/]")
            raise typer.Exit(EXIT_API_ERROR)
