"""Where a delivery goes, decided when it is sent: the URL's host is resolved once, every address
it resolves to is checked, and the request is made to a checked address (the URL's host goes in
the ``Host`` header and, for https, in the TLS server name the certificate is verified against),
so no second lookup can lead the connection elsewhere (DNS rebinding)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from theodolite.net_guard import (
    IPAddress,
    IPNetwork,
    literal_address,
    refusal,
    sockaddr_address,
)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
DEFAULT_PORTS = {"http": 80, "https": 443}


class DestinationRefused(Exception):
    """A webhook URL the testbed does not send to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A webhook URL as the request would be made to it."""

    url: httpx.URL
    host: str  # what is resolved: IDNA-encoded, an IPv6 literal without brackets or zone quoting
    port: int


def parse_target(url: str) -> Target:
    """The URL's target, or DestinationRefused: only http(s), a host, no user name or password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DestinationRefused(f"not a valid URL ({exc})") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
        raise DestinationRefused("must be an http:// or https:// URL")
    if parsed.userinfo:
        raise DestinationRefused("must not carry a user name or password")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    if not 0 < port < 65536:
        raise DestinationRefused(f"port {port} is out of range")
    return Target(url=parsed, host=unquote(parsed.raw_host.decode("ascii")), port=port)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives ``host``, in its order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(sockaddr_address(info[4]) for info in found))


@dataclass(frozen=True)
class PinnedTarget:
    """A target and the checked addresses its host resolved to."""

    target: Target
    addresses: list[IPAddress]

    def request(
        self,
        http: httpx.AsyncClient,
        address: IPAddress,
        *,
        content: bytes,
        headers: dict[str, str],
    ) -> httpx.Request:
        """The POST to ``address``, addressed to the URL's own host."""
        url = self.target.url
        headers = {**headers, "host": url.netloc.decode("ascii")}
        extensions = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = self.target.host
            # The pool knows a connection by its address only; a TLS connection belongs to the
            # name it was opened (and its certificate checked) for, so none is reused.
            headers["connection"] = "close"
        return http.build_request(
            "POST",
            url.copy_with(host=str(address)),
            content=content,
            headers=headers,
            extensions=extensions,
        )


class DestinationGuard:
    """Resolves and checks webhook URLs at send time, and sends to the checked addresses."""

    def __init__(
        self, *, allowed: Sequence[IPNetwork], resolve: Resolver = system_resolver
    ) -> None:
        self._allowed = tuple(allowed)
        self._resolve = resolve

    async def pin(self, url: str) -> PinnedTarget:
        """The URL's checked addresses, or DestinationRefused if any address is refused (a name
        with one internal address among public ones is refused as a whole)."""
        target = parse_target(url)
        try:
            addresses = await self._resolve(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused(f"{target.host} does not resolve ({exc})") from None
        if not addresses:
            raise DestinationRefused(f"{target.host} resolves to no address")
        named = literal_address(target.host) is None
        for address in addresses:
            why = refusal(address, self._allowed)
            if why is not None:
                raise DestinationRefused(
                    f"{target.host} resolves to a refused address: {why}" if named else why
                )
        return PinnedTarget(target=target, addresses=addresses)

    async def post(
        self, http: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST to the first checked address that takes the connection; the answer's status and
        headers (its body is never read)."""
        pinned = await self.pin(url)
        failed: httpx.ConnectError | None = None
        for address in pinned.addresses:
            request = pinned.request(http, address, content=content, headers=headers)
            try:
                response = await http.send(request, stream=True)
            except httpx.ConnectError as exc:
                failed = exc
                continue
            await response.aclose()
            return response
        assert failed is not None
        raise failed
