"""Remote path values the worker downloads (s3://, http(s)://): the operator's policy as the api
applies it at submission, and the worker's downloader against a real local web server, its
address checks, redirects and size cap."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from theodolite.downloads import (
    DownloadSupport,
    common_downloads,
    download_refusal,
    s3_readable,
    worker_fetched,
)
from theodolite.mlproject import parse_mlproject, remote_inputs
from theodolite.net_guard import IPAddress
from theodolite_worker.downloads import Downloader, DownloadFailed, offered, size_text
from theodolite_worker.settings import WorkerSettings

BODY = b"x,y\n1,2\n"


def test_worker_fetched_schemes() -> None:
    assert (
        worker_fetched("s3://b/k") and worker_fetched("https://h/x") and worker_fetched("http://h")
    )
    assert not worker_fetched("runs:/abc/x") and not worker_fetched("data/x.csv")


@pytest.mark.parametrize(
    ("bucket", "key", "readable", "allowed"),
    [
        ("data", "a/b.csv", ["data"], True),
        ("data", "a/b.csv", ["data/a"], True),
        ("data", "a/b.csv", ["data/a/"], True),
        ("data", "ab/b.csv", ["data/a"], False),  # a prefix is a folder, not a string start
        ("other", "a/b.csv", ["data"], False),
        ("data", "a/b.csv", [], False),
    ],
)
def test_s3_readable(bucket: str, key: str, readable: list[str], allowed: bool) -> None:
    assert s3_readable(bucket, key, readable) is allowed


def test_nothing_offered_refuses_naming_the_settings() -> None:
    why = download_refusal("s3://data/x.csv", None, queue="cpu")
    assert why is not None and "paths are not downloaded for jobs on queue 'cpu'" in why
    assert "THEODOLITE_WORKER_READABLE_BUCKETS" in why and "s3 buckets: none" in why
    why = download_refusal("https://example.com/x.csv", DownloadSupport(), queue="cpu")
    assert why is not None and "THEODOLITE_WORKER_HTTP_DOWNLOADS" in why


def test_what_the_queue_offers_is_downloaded_and_nothing_else() -> None:
    support = DownloadSupport(s3_buckets=["data/shared"], http=True)
    assert download_refusal("s3://data/shared/x.csv", support, queue="q") is None
    assert download_refusal("http://example.com/x.csv", support, queue="q") is None
    assert download_refusal("runs:/abc/x.csv", None, queue="q") is None  # the job's to fetch
    why = download_refusal("s3://data/private/x.csv", support, queue="q")
    assert why is not None and "s3 bucket 'data'" in why and "data/shared" in why


def test_a_queue_offers_what_all_its_workers_offer() -> None:
    found = common_downloads(
        [DownloadSupport(s3_buckets=["a", "b"], http=True), DownloadSupport(s3_buckets=["b"])]
    )
    assert found == DownloadSupport(s3_buckets=["b"], http=False)
    assert common_downloads([]) is None


def test_the_worker_offers_its_settings() -> None:
    settings = WorkerSettings(readable_buckets=["data/x"], http_downloads=True)
    assert offered(settings) == DownloadSupport(s3_buckets=["data/x"], http=True)
    assert offered(WorkerSettings()) == DownloadSupport()


@pytest.mark.parametrize("value", ["s3://b/..", "http://h/a/..?x", "http://h"])
def test_a_download_is_named_inside_its_folder(value: str, tmp_path: Path) -> None:
    main = parse_mlproject(
        "entry_points:\n  main:\n    parameters: {d: path}\n    command: 'run {d}'\n"
    ).entry_points["main"]
    _, target = remote_inputs(main, {"d": value}, tmp_path)["d"]
    assert target == tmp_path / "inputs" / "param_0" / "download"


def test_size_text() -> None:
    assert [size_text(n) for n in (12, 12 * 1024, 3 * 2**20, 3 * 2**30)] == [
        "12 B",
        "12 KB",
        "3 MB",
        "3.0 GB",
    ]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("?to=")[2])
            self.end_headers()
            return
        body = BODY * 1000 if self.path == "/big" else BODY
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _settings(**values: object) -> WorkerSettings:
    return WorkerSettings(http_downloads=True, download_max_bytes=1000, **values)  # type: ignore[arg-type]


LOOPBACK_ALLOWED = {"http_download_allow_networks": [ipaddress.ip_network("127.0.0.1/32")]}


def test_an_allowed_host_is_downloaded(web: str, tmp_path: Path) -> None:
    target = tmp_path / "inputs" / "param_0" / "data.csv"
    size = asyncio.run(Downloader(_settings(**LOOPBACK_ALLOWED)).fetch(f"http://{web}/d", target))
    assert size == len(BODY) and target.read_bytes() == BODY
    assert [p.name for p in target.parent.iterdir()] == ["data.csv"]  # no partial file left


@pytest.mark.parametrize(
    "url",
    [
        "http://{web}/d",  # loopback, not allow-listed
        "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
        "http://[::ffff:127.0.0.1]:{port}/d",  # loopback in IPv6 dress
        "http://0x7f000001:{port}/d",
    ],
)
def test_internal_addresses_are_refused_before_any_connection(
    web: str, tmp_path: Path, url: str
) -> None:
    port = web.rpartition(":")[2]
    with pytest.raises(DownloadFailed, match="not downloaded"):
        asyncio.run(Downloader(_settings()).fetch(url.format(web=web, port=port), tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_a_name_resolving_to_an_internal_address_is_refused(tmp_path: Path) -> None:
    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]

    downloader = Downloader(_settings(), resolve=rebinding)
    with pytest.raises(DownloadFailed, match="resolves to a refused address: 10.0.0.5"):
        asyncio.run(downloader.fetch("https://data.example/x.csv", tmp_path / "x"))


def test_a_redirect_is_checked_like_the_first_address(web: str, tmp_path: Path) -> None:
    downloader = Downloader(_settings(**LOOPBACK_ALLOWED))
    good = f"http://{web}/redirect?to=http://{web}/d"
    assert asyncio.run(downloader.fetch(good, tmp_path / "a")) == len(BODY)
    bad = f"http://{web}/redirect?to=http://169.254.169.254/latest/"
    with pytest.raises(DownloadFailed, match="169.254.169.254 is link-local"):
        asyncio.run(downloader.fetch(bad, tmp_path / "b"))


def test_over_the_cap_and_missing_files_fail(web: str, tmp_path: Path) -> None:
    downloader = Downloader(_settings(**LOOPBACK_ALLOWED))
    with pytest.raises(DownloadFailed, match="larger than the cap of 1000 bytes"):
        asyncio.run(downloader.fetch(f"http://{web}/big", tmp_path / "big"))
    with pytest.raises(DownloadFailed, match="answered 404"):
        asyncio.run(downloader.fetch(f"http://{web}/missing", tmp_path / "m"))
    assert list(tmp_path.iterdir()) == []


def test_the_worker_refuses_what_its_settings_do_not_allow(web: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed, match="THEODOLITE_WORKER_HTTP_DOWNLOADS"):
        asyncio.run(Downloader(WorkerSettings()).fetch(f"http://{web}/d", tmp_path / "x"))
    with pytest.raises(DownloadFailed, match="THEODOLITE_WORKER_READABLE_BUCKETS"):
        asyncio.run(Downloader(WorkerSettings()).fetch("s3://data/x.csv", tmp_path / "x"))
