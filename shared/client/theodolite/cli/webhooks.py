"""``theodolite webhooks ...``: an experiment's webhook subscriptions and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from theodolite.cli.common import (
    DEFAULT_API_URL,
    ApiUrl,
    AsJson,
    api_client,
    console,
    print_listing,
    print_result,
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
    print_result(created, describe_created, as_json=as_json)


def describe_created(created: Any) -> None:
    """A new subscription, with the signing secret the api shows this once."""
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
    print_listing(
        found,
        ("id", "url", "events", "enabled", "failures"),
        lambda hook: (
            hook.id,
            hook.url,
            ", ".join(hook.event_types),
            "yes" if hook.enabled else f"no: {hook.disabled_reason}",
            hook.consecutive_failures,
        ),
        title="webhooks",
        as_json=as_json,
    )


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
    print_listing(
        page,
        ("id", "event", "status", "attempts", "last"),
        lambda d: (d.id, d.event_type, d.status, d.attempts, d.last_error or d.last_status_code),
        title=f"deliveries ({page.count})",
        as_json=as_json,
    )
