"""The remote ``path`` values the worker downloads for a job before it starts, outside its sandbox:
``s3://`` from the buckets its operator made readable (with the worker's own S3 credentials, which
the job never sees) and ``http(s)://`` where its operator allowed it. Web downloads go only to
global addresses (or networks the operator named): the host is resolved once, every address it
resolves to is checked, the connection is made to a checked address (DNS rebinding), and each
redirect is checked the same way. Every download is capped in size and time."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

import httpx

from theodolite.downloads import (
    HTTP_DOWNLOADS_SETTING,
    READABLE_BUCKETS_SETTING,
    DownloadSupport,
    s3_location,
    s3_readable,
)
from theodolite.net_guard import IPAddress, literal_address, refusal, sockaddr_address
from theodolite.storage import ObjectNotFound, ObjectStore
from theodolite_worker.settings import WorkerSettings

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5
CHUNK_BYTES = 1 << 16


class DownloadFailed(Exception):
    """A remote path value the worker did not download; the message says why."""


def offered(settings: WorkerSettings) -> DownloadSupport:
    """What this worker downloads for its jobs, as its heartbeat announces it."""
    return DownloadSupport(s3_buckets=list(settings.readable_buckets), http=settings.http_downloads)


def size_text(size: int) -> str:
    """``size`` bytes in the largest unit that keeps it at least 1 (``12 KB``)."""
    if size < 1024:
        return f"{size} B"
    amount = size / 1024
    for unit in ("KB", "MB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives ``host``, in its order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(sockaddr_address(info[4]) for info in found))


class _CappedFile:
    """Writes a download beside its target, refusing it past the cap; renamed when complete."""

    def __init__(self, target: Path, max_bytes: int, uri: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self._partial = target.with_name(f".{target.name}.partial")
        self._target, self._max, self._uri = target, max_bytes, uri
        self._file = self._partial.open("wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise DownloadFailed(f"{self._uri} is larger than the cap of {self._max} bytes")
        self._file.write(chunk)

    def finish(self) -> int:
        self._file.close()
        os.replace(self._partial, self._target)
        return self.size

    def discard(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


class Downloader:
    """Fetches s3:// and http(s):// path values into a job's folder, within the settings."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        store: ObjectStore | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self._settings = settings
        self._store = store
        self._resolve = resolve

    async def fetch(self, uri: str, target: Path) -> int:
        """Download ``uri`` to ``target``; its size, or DownloadFailed with the reason."""
        limit = self._settings.download_timeout_s
        try:
            async with asyncio.timeout(limit):
                if uri.startswith("s3://"):
                    return await asyncio.to_thread(self._s3, uri, target, time.monotonic() + limit)
                return await self._http(uri, target)
        except TimeoutError:
            raise DownloadFailed(f"{uri} took longer than {limit:g} s") from None

    def _s3(self, uri: str, target: Path, deadline: float) -> int:
        bucket, key = s3_location(uri)
        if not bucket or not key or not s3_readable(bucket, key, self._settings.readable_buckets):
            raise DownloadFailed(
                f"{uri}: not in a bucket this worker reads ({READABLE_BUCKETS_SETTING})"
            )
        if self._store is None:
            self._store = ObjectStore(self._settings.storage)
        out = _CappedFile(target, self._settings.download_max_bytes, uri)
        try:
            for chunk in self._store.iter_chunks(bucket, key, CHUNK_BYTES):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
            return out.finish()
        except ObjectNotFound:
            out.discard()
            raise DownloadFailed(f"{uri}: no such object") from None
        except BaseException:
            out.discard()
            raise

    async def _pinned(self, url: httpx.URL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
        """The URL rewritten to a checked address of its host, with the Host header and TLS
        server name of the original; DownloadFailed when an address is refused."""
        if url.scheme not in DEFAULT_PORTS or not url.raw_host:
            raise DownloadFailed(f"{url}: only http:// and https:// URLs are downloaded")
        if url.userinfo:
            raise DownloadFailed(f"{url}: a URL must not carry a user name or password")
        host = unquote(url.raw_host.decode("ascii"))
        port = url.port or DEFAULT_PORTS[url.scheme]
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise DownloadFailed(f"{host} does not resolve ({exc})") from None
        if not addresses:
            raise DownloadFailed(f"{host} resolves to no address")
        allowed = self._settings.http_download_allow_networks
        named = literal_address(host) is None
        for address in addresses:  # one internal address among public ones refuses the name
            if (why := refusal(address, allowed)) is not None:
                said = f"{host} resolves to a refused address: {why}" if named else why
                raise DownloadFailed(f"{url}: {said} (not downloaded)")
        headers = {"host": url.netloc.decode("ascii")}
        extensions = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        return url.copy_with(host=str(addresses[0])), headers, extensions

    async def _http(self, uri: str, target: Path) -> int:
        if not self._settings.http_downloads:
            raise DownloadFailed(
                f"{uri}: this worker downloads no http(s) ({HTTP_DOWNLOADS_SETTING})"
            )
        try:
            url = httpx.URL(uri)
        except httpx.InvalidURL as exc:
            raise DownloadFailed(f"{uri}: not a valid URL ({exc})") from None
        timeout = httpx.Timeout(self._settings.download_timeout_s)
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=timeout, trust_env=False
        ) as http:
            for _ in range(MAX_REDIRECTS + 1):
                address_url, headers, extensions = await self._pinned(url)
                request = http.build_request(
                    "GET", address_url, headers=headers, extensions=extensions
                )
                try:
                    response = await http.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise DownloadFailed(f"{url}: {type(exc).__name__}: {exc}") from None
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = url.join(response.headers["location"])
                        continue  # the next address is checked like the first
                    if response.status_code != 200:
                        raise DownloadFailed(f"{url}: the server answered {response.status_code}")
                    return await self._save(response, str(url), target)
                finally:
                    await response.aclose()
        raise DownloadFailed(f"{uri}: more than {MAX_REDIRECTS} redirects")

    async def _save(self, response: httpx.Response, uri: str, target: Path) -> int:
        cap = self._settings.download_max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise DownloadFailed(f"{uri} is {declared} bytes, larger than the cap of {cap} bytes")
        out = _CappedFile(target, cap, uri)
        try:
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                out.write(chunk)
            return out.finish()
        except BaseException:
            out.discard()
            raise
