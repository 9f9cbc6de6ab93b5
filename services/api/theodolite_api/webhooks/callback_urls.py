"""Callback URLs users give the testbed to call (per-job callbacks, webhook subscriptions):
checked so the testbed cannot be used to reach its own internal services."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from urllib.parse import urlsplit

from theodolite.problems import Problem
from theodolite_api.settings import ApiSettings

MAX_URL_LENGTH = 2048


def new_webhook_secret() -> str:
    """A secret in the Standard Webhooks form: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return (parts.hostname or "").lower(), parts.port


def internal_endpoints(settings: ApiSettings) -> set[tuple[str, int | None]]:
    """host:port of every service the testbed itself talks to."""
    found = {
        _host_port(settings.mlflow.tracking_uri),
        _host_port(settings.storage.endpoint),
        _host_port(settings.registry_url),
        _host_port(settings.broker.url),
        _host_port(settings.db.url.replace("+asyncpg", "")),
        (settings.host.lower(), settings.port),
        ("127.0.0.1", settings.port),
        ("localhost", settings.port),
    }
    return {(host, port) for host, port in found if host}


def callback_url_problems(url: str, settings: ApiSettings, field: str) -> list[Problem]:
    problems: list[Problem] = []
    if len(url) > MAX_URL_LENGTH:
        problems.append(Problem(field=field, message=f"longer than {MAX_URL_LENGTH} characters"))
        return problems
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        problems.append(Problem(field=field, message="must be an http:// or https:// URL"))
        return problems
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    denied = internal_endpoints(settings)
    if (host, port) in denied or (
        host in {"localhost", "127.0.0.1"} and ("127.0.0.1", port) in denied
    ):
        problems.append(Problem(field=field, message="points at one of the testbed's own services"))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in settings.callback_denied_networks:
        if address is not None and address in ipaddress.ip_network(entry, strict=False):
            problems.append(Problem(field=field, message=f"addresses in {entry} are not allowed"))
    return problems
