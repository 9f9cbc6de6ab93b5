"""Which addresses outbound requests to user-given URLs (webhooks, path downloads) may go to:
global unicast ones, and those in the networks an operator allowed. Decided by ``ipaddress``
properties of the address itself, never by how it was spelt: ``127.1``, ``2130706433``,
``0x7f000001`` and ``0177.0.0.1`` are read the way the system resolver reads them (all
127.0.0.1), and IPv6 forms that carry an IPv4 address are judged by the IPv4 address too."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_UNIQUE_LOCAL = IPv6Network("fc00::/7")
# Both reach the IPv4 address they end in: a host that speaks IPv4-compatible addresses, or a
# NAT64 translator (RFC 6052's well-known prefix), sends the packets on to it.
_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_TRANSLATED_FORMS = frozenset({"IPv4-mapped", "IPv4-compatible", "NAT64"})


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells in any form the system resolver takes as a number (no lookup
    is made); None when ``host`` is a name."""
    try:
        found = socket.getaddrinfo(
            host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return sockaddr_address(found[0][4])


def sockaddr_address(sockaddr: tuple[object, ...]) -> IPAddress:
    """The address of a ``getaddrinfo`` socket address."""
    return ipaddress.ip_address(str(sockaddr[0]))


def is_localhost_name(host: str) -> bool:
    """``localhost`` and names under it, which resolvers answer with loopback (RFC 6761)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def embedded_ipv4(address: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """The IPv4 addresses ``address`` carries, each with the name of the form that carries it."""
    found: list[tuple[str, IPv4Address]] = []
    if address.ipv4_mapped is not None:
        found.append(("IPv4-mapped", address.ipv4_mapped))
    elif address in _IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are no IPv4 forms
        found.append(("IPv4-compatible", IPv4Address(int(address) & 0xFFFFFFFF)))
    if address in _NAT64:
        found.append(("NAT64", IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def _kind(address: IPAddress) -> str | None:
    """What kind of non-destination ``address`` is; None for a global unicast address."""
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unique-local", address in _UNIQUE_LOCAL),
        ("site-local", isinstance(address, IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, found in kinds if found), None)


def refusal(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why no webhook goes to ``address``; None when one may. Addresses in ``allowed`` may,
    unless they are unspecified or multicast (neither is a host to connect to; connecting to
    0.0.0.0 reaches this machine)."""
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_multicast:
        return f"{address} is multicast"
    if isinstance(address, IPv6Address):
        embedded = embedded_ipv4(address)
        for form, inner in embedded:
            why = refusal(inner, allowed)
            if why is not None:
                return f"{address} is the {form} form of {inner}: {why}"
        if any(form in _TRANSLATED_FORMS for form, _ in embedded):
            return None  # it reaches the IPv4 address, which was judged
    if any(address in network for network in allowed):
        return None
    kind = _kind(address)
    return None if kind is None else f"{address} is {kind}"
