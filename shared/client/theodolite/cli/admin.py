"""``theodolite admin``: users, groups and API keys (an administrator's key); ``login`` keeps a
key for an api in the config file, ``whoami`` says who a key is."""

from __future__ import annotations

from typing import Annotated

import typer

from theodolite.cli.common import (
    DEFAULT_API_URL,
    EXIT_API_ERROR,
    ApiUrl,
    AsJson,
    api_client,
    console,
    create_command,
    list_command,
    print_result,
)

admin_app = typer.Typer(no_args_is_help=True, help="Users, groups and API keys (administrators).")
users_app = typer.Typer(no_args_is_help=True, help="Users: create and list.")
groups_app = typer.Typer(no_args_is_help=True, help="Groups and who is in them.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
admin_app.add_typer(users_app, name="users")
admin_app.add_typer(groups_app, name="groups")
admin_app.add_typer(keys_app, name="keys")

Role = Annotated[str, typer.Option(help="admin, member (submits) or viewer (reads).")]


def login(
    api_key: Annotated[str, typer.Option(prompt=True, hide_input=True, help="The key.")],
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Check a key against the api and keep it (config file, mode 0600) for later commands."""
    from theodolite.client import ApiError, TheodoliteClient
    from theodolite.client.credentials import save_key

    with TheodoliteClient(api_url, api_key=api_key) as checked:
        try:
            caller = checked.whoami()
        except ApiError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT_API_ERROR) from exc
    path = save_key(api_url, api_key)
    console.print(f"logged in to {api_url} as {caller.user}; the key is kept in {path}")


def whoami(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """The user a key acts for, their groups and roles, and the key's scopes."""
    with api_client(api_url) as client:
        caller = client.whoami()

    def describe(c: object) -> None:
        groups = ", ".join(f"{m.group} ({m.role})" for m in caller.groups) or "no group"
        admin = " (administrator)" if caller.is_admin else ""
        console.print(f"{caller.user}{admin}: {groups}; scopes {', '.join(caller.scopes)}")

    print_result(caller, describe, as_json=as_json)


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="The user's name.")],
    admin: Annotated[bool, typer.Option(help="An administrator of the whole testbed.")] = False,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Create a user (then add them to groups and give them a key)."""
    create_command(api_url, lambda c: c.create_user(name, is_admin=admin), "user", as_json=as_json)


@users_app.command("list")
def list_users(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Every user."""
    list_command(
        api_url,
        lambda client: client.list_users(),
        ("name", "admin", "disabled", "OIDC subject"),
        lambda u: (u.name, u.is_admin, u.disabled, u.oidc_subject),
        title="users ({count})",
        as_json=as_json,
    )


@groups_app.command("create")
def create_group(
    name: Annotated[str, typer.Argument(help="The group's name (a team, a project).")],
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Create a group."""
    create_command(api_url, lambda c: c.create_group(name, description), "group", as_json=as_json)


@groups_app.command("list")
def list_groups(as_json: AsJson = False, api_url: ApiUrl = DEFAULT_API_URL) -> None:
    """Every group."""
    list_command(
        api_url,
        lambda client: client.list_groups(),
        ("name", "description"),
        lambda g: (g.name, g.description),
        title="groups ({count})",
        as_json=as_json,
    )


@groups_app.command("add")
def add_member(
    group: Annotated[str, typer.Argument(help="The group.")],
    user: Annotated[str, typer.Argument(help="The user.")],
    role: Role = "member",
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Put a user in a group, or change their role there."""
    with api_client(api_url) as client:
        member = client.set_member(group, user, role)
    print_result(
        member, lambda m: console.print(f"{m.user} is {m.role} of {m.group}"), as_json=as_json
    )


@keys_app.command("create")
def create_key(
    user: Annotated[str, typer.Argument(help="The user the key acts for.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, submit, publish-plugins or admin; repeatable."),
    ],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    expires_in_days: Annotated[
        float | None, typer.Option(help="Days until it expires (none: 90).")
    ] = 90,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """A new key; it is printed this once and cannot be shown again."""
    with api_client(api_url) as client:
        made = client.create_key(user, name, scope, expires_in_days)

    def describe(k: object) -> None:
        console.print(f"key {made.prefix} for {user} ({', '.join(made.scopes)}), shown once:")
        print(made.key)

    print_result(made, describe, as_json=as_json)


@keys_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option(help="Only this user's.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Keys (never the keys themselves), newest first."""
    list_command(
        api_url,
        lambda client: client.list_keys(user),
        ("id", "prefix", "name", "scopes", "expires", "revoked", "last used"),
        lambda k: (
            k.id,
            k.prefix,
            k.name,
            ",".join(k.scopes),
            k.expires_at,
            k.revoked_at,
            k.last_used_at,
        ),
        title="keys ({count})",
        as_json=as_json,
    )


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")],
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
) -> None:
    """Revoke a key: it stops working at once."""
    with api_client(api_url) as client:
        key = client.revoke_key(key_id)
    print_result(key, lambda k: console.print(f"key {k.prefix} revoked"), as_json=as_json)
