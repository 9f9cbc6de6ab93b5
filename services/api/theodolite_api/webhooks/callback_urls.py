"""Callback URLs users give the testbed to call (per-job callbacks, webhook subscriptions):
checked so the testbed cannot be used to reach its own internal services."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

from theodolite.net_guard import is_localhost_name, literal_address, refusal
from theodolite.problems import Problem
from theodolite_api.settings import ApiSettings
from theodolite_api.webhooks.destinations import DestinationRefused, parse_target

MAX_URL_LENGTH = 2048
LOCALHOST = IPv4Address("127.0.0.1")


def new_webhook_secret() -> str:
    """A secret in the Standard Webhooks form: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _host_key(host: str) -> str:
    """A host as the same key however it is spelt: an address literal normalised, every
    loopback address and ``localhost`` name as ``loopback``."""
    address = literal_address(host)
    if address is None:
        return "loopback" if is_localhost_name(host) else host.rstrip(".").lower()
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return "loopback" if address.is_loopback else str(address)


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return _host_key(parts.hostname or ""), parts.port


def internal_endpoints(settings: ApiSettings) -> set[tuple[str, int | None]]:
    """host:port of every service the testbed itself talks to (hosts as ``_host_key`` gives)."""
    found = {
        _host_port(settings.mlflow.tracking_uri),
        _host_port(settings.storage.endpoint),
        _host_port(settings.registry_url),
        _host_port(settings.broker.url),
        _host_port(settings.db.url.replace("+asyncpg", "")),
        (_host_key(settings.host), settings.port),
        ("loopback", settings.port),
    }
    return {(host, port) for host, port in found if host}


def callback_url_problems(url: str, settings: ApiSettings, field: str) -> list[Problem]:
    """What keeps ``url`` from being a webhook URL. A host given as an address is checked now; a
    name is checked (with every address it resolves to) each time a delivery is sent."""
    if len(url) > MAX_URL_LENGTH:
        return [Problem(field=field, message=f"longer than {MAX_URL_LENGTH} characters")]
    try:
        target = parse_target(url)
    except DestinationRefused as exc:
        return [Problem(field=field, message=str(exc))]
    problems: list[Problem] = []
    if (_host_key(target.host), target.port) in internal_endpoints(settings):
        problems.append(Problem(field=field, message="points at one of the testbed's own services"))
    address = literal_address(target.host)
    said = "not a public address"
    if address is None and is_localhost_name(target.host):
        # What resolvers answer for it, whatever this machine's hosts file says.
        address, said = LOCALHOST, f"{target.host} is this machine"
    if address is None:
        return problems
    why = refusal(address, settings.webhooks.allow_networks)
    if why is not None:
        problems.append(Problem(field=field, message=f"{said}: {why}"))
    for entry in settings.callback_denied_networks:
        if address in ipaddress.ip_network(entry, strict=False):
            problems.append(Problem(field=field, message=f"addresses in {entry} are not allowed"))
    return problems
