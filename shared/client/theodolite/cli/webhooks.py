"""``theodolite webhooks ...``: an experiment's webhook subscriptions and their deliveries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from theodolite.cli.common import (
    DEFAULT_API_URL,
    ApiUrl,
    AsJson,
    api_client,
    console,
    print_json,
    resolve_experiment,
)

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks: subscribe, list, deliveries.")

ExperimentArg = Annotated[str, typer.Argument(help="Experiment name or id.")]


@webhooks_app.command("add")
def add(
    experiment: ExperimentArg,
    url: Annotated[str, typer.Argument(help="Where to POST deliveries.")],
    event: Annotated[
        list[str], typer.Option("--event", help="An event type (repeatable); default: statuses.")
    ] = [],  # noqa: B006
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Subscribe a URL; prints the signing secret, this once."""
    with api_client(api_url) as client:
        exp = resolve_experiment(client, experiment)
        created = client.create_webhook(exp.id, url, event_types=event or None)
    if as_json:
        print_json(created)
        return
    console.print(f"webhook {created.id} -> {created.url}")
    console.print(f"  events: {', '.join(created.event_types)}")
    console.print(f"  secret (shown once): {created.secret}")


@webhooks_app.command("list")
def list_webhooks(
    experiment: ExperimentArg, as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL
) -> None:
    """The experiment's subscriptions."""
    with api_client(api_url) as client:
        found = client.webhooks(resolve_experiment(client, experiment).id)
    if as_json:
        print_json(found)
        return
    table = Table("id", "url", "events", "enabled", "failures", title="webhooks")
    for hook in found:
        enabled = "yes" if hook.enabled else f"no: {hook.disabled_reason}"
        table.add_row(
            str(hook.id),
            hook.url,
            ", ".join(hook.event_types),
            enabled,
            str(hook.consecutive_failures),
        )
    console.print(table)


@webhooks_app.command("deliveries")
def deliveries(
    experiment: ExperimentArg,
    webhook_id: Annotated[str, typer.Argument(help="The subscription's id.")],
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """The subscription's delivery log, newest first."""
    with api_client(api_url) as client:
        page = client.deliveries(resolve_experiment(client, experiment).id, webhook_id, status)
    if as_json:
        print_json(page)
        return
    table = Table("id", "event", "status", "attempts", "last", title=f"deliveries ({page.count})")
    for delivery in page.data:
        last = delivery.last_error or (str(delivery.last_status_code or ""))
        table.add_row(
            str(delivery.id), delivery.event_type, delivery.status, str(delivery.attempts), last
        )
    console.print(table)
