"""s3:// and http(s):// path values through the HTTP API on the real stack: a worker whose
operator made a SeaweedFS bucket readable and allowed http(s) downloads (127.0.0.1 allow-listed
explicitly, as it is a private address) fetches them into the job's folder before the job starts;
the job reads the file and never sees the worker's S3 credentials. What the queue does not offer
is refused at submission; an internal address, or a file over the cap, fails the job with the
reason."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack
from tests.integration.helpers import job_target, submit, unique, wait_for_end, wait_until
from theodolite.devstack import start_worker, stop_process, worker_name

MLPROJECT = """name: downloads
entry_points:
  main:
    parameters:
      data: {type: path}
    command: "python read.py {data}"
"""
READ_PY = """import os, sys
print("PATH_VALUE", sys.argv[1])
print("CONTENT", open(sys.argv[1]).read().strip())
print("ENVIRONMENT", " ".join(sorted(os.environ)))
print("VALUES", " ".join(sorted(os.environ.values())))
"""
CONTENT = "a,b\n1,2"
MAX_BYTES = 4096


class _Served:
    """What a local web server serves and the paths it was asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []


def _web(address: str, served: _Served) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            served.requests.append(self.path)
            body = ("z" * (MAX_BYTES + 1) if self.path == "/big.csv" else CONTENT).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{address}:{server.server_address[1]}"


@pytest.fixture(scope="module")
def web() -> Iterator[tuple[str, str, _Served]]:
    """Two servers: 127.0.0.1 (allow-listed for the worker) and 127.0.0.2 (not)."""
    served = _Served()
    allowed, allowed_at = _web("127.0.0.1", served)
    other, other_at = _web("127.0.0.2", served)
    yield allowed_at, other_at, served
    for server in (allowed, other):
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def buckets(stack: Stack) -> dict[str, str]:
    store = stack.object_store()
    names = {"readable": unique("h2-data"), "other": unique("h2-other")}
    for name in names.values():
        store.ensure_bucket(name)
        store.put_bytes(name, "shared/data.csv", CONTENT.encode(), "text/csv")
        store.put_bytes(name, "shared/big.csv", b"z" * (MAX_BYTES + 1), "text/csv")
    return names


@pytest.fixture(scope="module")
def downloading_queue(stack: Stack, buckets: dict[str, str]) -> Iterator[str]:
    """A queue whose worker reads one bucket's shared/ folder and downloads from the web."""
    name = unique("downloads")
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as admin:
        assert admin.post("/queues", json={"name": name}).status_code == 201
        env = {
            "THEODOLITE_WORKER_READABLE_BUCKETS": json.dumps([f"{buckets['readable']}/shared"]),
            "THEODOLITE_WORKER_HTTP_DOWNLOADS": "true",
            "THEODOLITE_WORKER_HTTP_DOWNLOAD_ALLOW_NETWORKS": '["127.0.0.1/32"]',
            "THEODOLITE_WORKER_DOWNLOAD_MAX_BYTES": str(MAX_BYTES),
            "THEODOLITE_WORKER_WARM_POOL_PRELOAD": '["json"]',
        }
        start_worker(stack.config, name, env=env)

        def announced() -> bool:
            queue = admin.get(f"/queues/{name}").json()
            return queue.get("downloads") is not None

        try:
            wait_until(announced, 60, "the worker's downloads announced")
            yield name
        finally:
            stop_process(stack.config, worker_name(name))
            admin.delete(f"/queues/{name}")


@pytest.fixture(scope="module")
def target(stack: Stack) -> dict[str, str]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as admin:
        return job_target(admin, make_tar({"MLproject": MLPROJECT, "read.py": READ_PY}))


def _run(api: httpx.Client, target: dict[str, str], queue: str, value: str) -> dict[str, Any]:
    response = submit(api, **target, queue=queue, params={"data": value})
    assert response.status_code == 202, response.text
    job = wait_for_end(api, response.json()["id"], timeout_s=120)
    job["log"] = api.get(f"/jobs/{job['id']}/logs").text
    return job


def test_the_queue_announces_what_it_downloads(
    api: httpx.Client, downloading_queue: str, buckets: dict[str, str]
) -> None:
    queue = api.get(f"/queues/{downloading_queue}").json()
    assert queue["downloads"] == {"s3_buckets": [f"{buckets['readable']}/shared"], "http": True}


def test_a_readable_bucket_is_downloaded_and_the_job_reads_it(
    stack: Stack,
    api: httpx.Client,
    target: dict[str, str],
    downloading_queue: str,
    buckets: dict[str, str],
) -> None:
    value = f"s3://{buckets['readable']}/shared/data.csv"
    job = _run(api, target, downloading_queue, value)
    assert job["status"] == "succeeded", (job["error"], job["log"])
    assert f"CONTENT {CONTENT.splitlines()[0]}" in job["log"]
    assert "/inputs/param_0/data.csv" in job["log"]
    assert f"parameter data: {value} -> inputs/param_0/data.csv (7 B)" in job["log"]
    # The worker's S3 credentials stay the worker's.
    environment = next(line for line in job["log"].splitlines() if line.startswith("ENVIRONMENT"))
    assert not [n for n in environment.split() if n.startswith(("AWS_", "THEODOLITE_S3"))]
    values = next(line for line in job["log"].splitlines() if line.startswith("VALUES"))
    assert stack.config.s3_secret_key not in values


def test_another_bucket_or_folder_is_refused_at_submission(
    api: httpx.Client, target: dict[str, str], downloading_queue: str, buckets: dict[str, str]
) -> None:
    for value in (
        f"s3://{buckets['other']}/shared/data.csv",
        f"s3://{buckets['readable']}/elsewhere/data.csv",
    ):
        response = submit(api, **target, queue=downloading_queue, params={"data": value})
        assert response.status_code == 422, response.text
        problem = response.json()["problems"][0]
        assert problem["field"] == "params.data"
        assert "THEODOLITE_WORKER_READABLE_BUCKETS" in problem["message"]
        assert f"{buckets['readable']}/shared" in problem["message"]  # what the queue offers


def test_the_default_queue_downloads_nothing(
    api: httpx.Client, target: dict[str, str], web: tuple[str, str, _Served]
) -> None:
    allowed_at, _, _ = web
    for value in ("s3://anything/x.csv", f"http://{allowed_at}/data.csv"):
        response = submit(api, **target, params={"data": value})
        assert response.status_code == 422, response.text
        assert "not downloaded for jobs" in response.json()["problems"][0]["message"]


def test_an_allowed_web_address_is_downloaded(
    api: httpx.Client,
    target: dict[str, str],
    downloading_queue: str,
    web: tuple[str, str, _Served],
) -> None:
    allowed_at, _, served = web
    job = _run(api, target, downloading_queue, f"http://{allowed_at}/data.csv")
    assert job["status"] == "succeeded", (job["error"], job["log"])
    assert f"CONTENT {CONTENT.splitlines()[0]}" in job["log"]
    assert "/data.csv" in served.requests


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://{other}/data.csv", "127.0.0.2 is loopback"),  # loopback, not allow-listed
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ],
)
def test_an_internal_web_address_fails_the_job_before_any_connection(
    api: httpx.Client,
    target: dict[str, str],
    downloading_queue: str,
    web: tuple[str, str, _Served],
    value: str,
    reason: str,
) -> None:
    _, other_at, served = web
    before = list(served.requests)
    job = _run(api, target, downloading_queue, value.format(other=other_at))
    assert job["status"] == "failed", job["log"]
    assert "could not download parameter data" in job["error"]
    assert reason in job["error"]
    assert "CONTENT" not in job["log"]
    assert served.requests == before


def test_a_file_over_the_cap_fails_the_job(
    api: httpx.Client,
    target: dict[str, str],
    downloading_queue: str,
    buckets: dict[str, str],
    web: tuple[str, str, _Served],
) -> None:
    allowed_at, _, _ = web
    for value in (f"s3://{buckets['readable']}/shared/big.csv", f"http://{allowed_at}/big.csv"):
        job = _run(api, target, downloading_queue, value)
        assert job["status"] == "failed", job["log"]
        assert f"larger than the cap of {MAX_BYTES} bytes" in job["error"], job["error"]
