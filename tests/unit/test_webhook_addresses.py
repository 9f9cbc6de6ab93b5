"""Where webhooks may go: every spelling of an internal address is refused, by the address it
stands for, when a URL is given and when a delivery is sent."""

from __future__ import annotations

import ipaddress

import pytest

from theodolite.net_guard import IPAddress, literal_address, refusal
from theodolite_api.settings import ApiSettings, WebhookSettings
from theodolite_api.webhooks.callback_urls import callback_url_problems
from theodolite_api.webhooks.destinations import DestinationGuard, DestinationRefused, parse_target

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

# Host as written -> the kind of address it is refused as.
REFUSED = {
    "127.0.0.1": "loopback",
    "127.1": "loopback",
    "2130706433": "loopback",
    "0x7f000001": "loopback",
    "0177.0.0.1": "loopback",
    "0x7f.1": "loopback",
    "127.255.255.254": "loopback",
    "10.0.0.1": "private",
    "10.1": "private",
    "167772161": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "0300.0250.1.1": "private",
    "169.254.169.254": "link-local",
    "100.64.0.1": "not globally routable",
    "192.0.2.1": "private",
    "198.18.0.1": "private",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "0.0.0.0": "unspecified",
    "0": "unspecified",
    "224.0.0.1": "multicast",
    "::1": "loopback",
    "[::1]": "loopback",
    "::": "unspecified",
    "::ffff:127.0.0.1": "loopback",
    "[::ffff:7f00:1]": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "link-local",
    "::127.0.0.1": "loopback",  # IPv4-compatible
    "64:ff9b::7f00:1": "loopback",  # NAT64
    "2002:7f00:1::1": "loopback",  # 6to4
    "2002:c0a8:101::": "private",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback",  # Teredo, client 127.0.0.1
    "fe80::1": "link-local",
    "fe80::1%1": "link-local",
    "fd00::1": "unique-local",
    "fc00::1": "unique-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "2001:db8::1": "private",  # documentation
}
PUBLIC = ["8.8.8.8", "134744072", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


def _address(host: str) -> IPAddress:
    address = literal_address(host)
    assert address is not None, host
    return address


@pytest.mark.parametrize(("host", "kind"), REFUSED.items())
def test_every_spelling_of_an_internal_address_is_refused(host: str, kind: str) -> None:
    why = refusal(_address(host))
    assert why is not None and kind in why, (host, why)


def test_odd_ipv4_spellings_are_read_as_the_system_resolver_reads_them() -> None:
    for host in ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.0.0.1"):
        assert _address(host) == ipaddress.ip_address("127.0.0.1"), host
    assert _address("10.1") == ipaddress.ip_address("10.0.0.1")


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_are_destinations(host: str) -> None:
    assert refusal(_address(host)) is None


def test_names_are_no_literals() -> None:
    for name in ("localhost", "example.com", "127.0.0.1.example.com", "xn--bcher-kva.de"):
        assert literal_address(name) is None, name


def test_allowed_networks_open_only_themselves() -> None:
    allowed = [LOOPBACK, ipaddress.ip_network("::1/128")]
    for host in ("127.0.0.1", "127.1", "::ffff:127.0.0.1", "::1"):
        assert refusal(_address(host), allowed) is None, host
    for host in ("10.0.0.1", "169.254.169.254", "fd00::1"):
        assert refusal(_address(host), allowed) is not None, host
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    for host in ("0.0.0.0", "::", "224.0.0.1", "ff02::1", "::ffff:0.0.0.0"):
        assert refusal(_address(host), everything) is not None, host


def test_allow_networks_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEODOLITE_WEBHOOK_ALLOW_NETWORKS", '["127.0.0.0/8", "fd00::/8"]')
    assert WebhookSettings().allow_networks == [LOOPBACK, ipaddress.ip_network("fd00::/8")]
    assert WebhookSettings(allow_networks=[]).allow_networks == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http"),
        ("file:///etc/passwd", "http"),
        ("http:///x", "http"),
        ("http://user:secret@example.com/x", "user name"),
        ("http://example.com\\@127.0.0.1/", "user name"),
        ("http://example.com:99999/", "out of range"),
        ("http://0177.0.0.1/", "not a valid URL"),
    ],
)
def test_urls_of_other_shapes_are_refused(url: str, why: str) -> None:
    with pytest.raises(DestinationRefused, match=why):
        parse_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1:9999/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]:9999/",
        "https://10.0.0.5/hook",
        "http://192.168.1.1/",
        "http://[fd00::1]/",
        "http://[fe80::1%25eth0]/",
        "http://localhost:9999/",
        "http://api.localhost./",
        "http://user@example.com/",
        "http://0177.0.0.1/",
    ],
)
def test_the_routes_refuse_internal_callback_urls(url: str) -> None:
    problems = callback_url_problems(url, ApiSettings(), "callback_url")
    assert problems and {p.field for p in problems} == {"callback_url"}, url


def test_allow_listed_loopback_is_accepted_but_the_testbeds_own_services_are_not() -> None:
    settings = ApiSettings(port=8000, webhooks=WebhookSettings(allow_networks=[LOOPBACK]))
    assert callback_url_problems("http://127.0.0.1:9999/hook", settings, "url") == []
    assert callback_url_problems("https://example.com/hook", settings, "url") == []
    assert callback_url_problems("http://localhost:9999/hook", settings, "url") == []
    for own in ("http://127.1:8000/", "http://localhost:8000/", "http://[::ffff:7f00:1]:8000/"):
        messages = [p.message for p in callback_url_problems(own, settings, "url")]
        assert "points at one of the testbed's own services" in messages, own
    denied = callback_url_problems("http://169.254.169.254/latest/meta-data", settings, "url")
    assert denied


def _resolving_to(*addresses: str) -> DestinationGuard:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]

    return DestinationGuard(allowed=[], resolve=resolve)


async def test_a_name_is_refused_if_any_address_it_resolves_to_is() -> None:
    with pytest.raises(
        DestinationRefused,
        match=r"hooks\.example resolves to a refused address: 127\.0\.0\.1 is loopback",
    ):
        await _resolving_to("127.0.0.1").pin("http://hooks.example/x")
    with pytest.raises(DestinationRefused, match="10.0.0.7 is private"):
        await _resolving_to("93.184.215.14", "10.0.0.7").pin("http://hooks.example/x")
    with pytest.raises(DestinationRefused, match="IPv4-mapped"):
        await _resolving_to("::ffff:192.168.0.1").pin("http://hooks.example/x")
    with pytest.raises(DestinationRefused, match="no address"):
        await _resolving_to().pin("http://hooks.example/x")
    with pytest.raises(DestinationRefused, match=r"^10\.0\.0\.1 is private$"):
        await _resolving_to("10.0.0.1").pin("http://10.1/x")  # a stored URL is judged again
    pinned = await _resolving_to("93.184.215.14").pin("https://hooks.example:8443/x")
    assert pinned.addresses == [ipaddress.ip_address("93.184.215.14")]


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    with pytest.raises(DestinationRefused, match="does not resolve"):
        await DestinationGuard(allowed=[], resolve=resolve).pin("http://nowhere.example/")
