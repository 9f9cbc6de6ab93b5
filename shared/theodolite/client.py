"""A small synchronous client for the REST API (httpx)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from theodolite.lifecycle import TERMINAL_STATUSES


class ApiError(RuntimeError):
    """An error answer from the api, with its RFC 9457 problem list."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.problems: list[dict[str, str]] = body.get("problems", [])
        lines = [f"{status} {body.get('title', '')}: {body.get('detail', '')}"]
        lines += [f"  - {p['field']}: {p['message']}" for p in self.problems]
        super().__init__("\n".join(lines))


def pack_folder(folder: Path) -> bytes:
    """A reproducible tar.gz of a folder: the same files always give the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as archive:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    # gzip stores a timestamp of its own in its header: zero it for reproducible bytes.
    data = bytearray(buffer.getvalue())
    data[4:8] = b"\x00\x00\x00\x00"
    return bytes(data)


class TheodoliteClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TheodoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            raise ApiError(response.status_code, body)
        return response.json()

    def ensure_experiment(self, name: str, description: str | None = None) -> dict[str, Any]:
        """The experiment of that name, created when missing."""
        try:
            return self._call(
                "POST", "/experiments", json={"name": name, "description": description}
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
        offset = 0
        while True:
            page = self._call("GET", "/experiments", params={"limit": 500, "offset": offset})
            for experiment in page["data"]:
                if experiment["name"] == name:
                    return experiment
            offset += len(page["data"])
            if not page["data"] or offset >= page["count"]:
                raise ApiError(404, {"detail": f"experiment {name!r} vanished"})

    def upload_entrypoint(self, source: Path) -> dict[str, Any]:
        """Upload a folder (packed as tar.gz) or an archive file."""
        data = pack_folder(source) if source.is_dir() else source.read_bytes()
        name = f"{source.name}.tar.gz" if source.is_dir() else source.name
        return self.upload_archive(data, name)

    def upload_archive(self, data: bytes, filename: str = "entrypoint.tar.gz") -> dict[str, Any]:
        return self._call("POST", "/entrypoints", files={"archive": (filename, data)})

    def push_plugin(self, source: Path) -> dict[str, Any]:
        """Publish a plugin folder (packed), wheel or source archive through the registry."""
        data = pack_folder(source) if source.is_dir() else source.read_bytes()
        name = f"{source.name}.tar.gz" if source.is_dir() else source.name
        return self._call("POST", "/plugins", files={"archive": (name, data)})

    def submit_job(self, **body: Any) -> dict[str, Any]:
        return self._call("POST", "/jobs", json=body)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/jobs/{job_id}/metrics")["data"]

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/jobs/{job_id}/artifacts")["data"]

    def queues(self) -> list[dict[str, Any]]:
        return self._call("GET", "/queues")["data"]

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 600,
        poll_s: float = 0.5,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job ends; ``on_change`` sees each new status."""
        deadline = time.monotonic() + timeout_s
        seen: str | None = None
        while True:
            job = self.get_job(job_id)
            if job["status"] != seen:
                seen = job["status"]
                if on_change is not None:
                    on_change(job)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)
