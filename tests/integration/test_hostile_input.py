"""Hostile input against the real stack: each case answers a 4xx problem+json that names the
problem, and leaves nothing behind (no row, no object in storage)."""

from __future__ import annotations

import json
import socket
import tarfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar, mlproject
from tests.fixtures.plugins import make_wheel
from tests.fixtures.stack import ARCHIVE_LIMITS, Stack
from tests.integration.helpers import create_experiment, job_target, run_job, unique, upload
from tests.unit.test_hostile_archives import link_member, tar_of

MAX_BYTES = int(ARCHIVE_LIMITS["THEODOLITE_ARCHIVE_MAX_BYTES"])
OK_PROJECT = mlproject("ok", "echo {p}", p=("string", "x"))


def _problems(response: httpx.Response, status: int = 422) -> dict[str, str]:
    """The answer's problems by field, after checking it is a problem+json of ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {p["field"]: p["message"] for p in response.json().get("problems", [])}


def _count(api: httpx.Client, path: str) -> int:
    answer = api.get(path)
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


class _Unchanged:
    """What a refused request must not have added: rows behind the list routes, stored keys."""

    def __init__(self, api: httpx.Client, stack: Stack) -> None:
        self._api, self._stack = api, stack
        self._before = self._snapshot()

    def reset(self) -> None:
        """From now on: what the test made itself before its hostile request is expected."""
        self._before = self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        store = self._stack.object_store()
        return {
            "experiments": _count(self._api, "/experiments"),
            "entrypoints": _count(self._api, "/entrypoints"),
            "jobs": _count(self._api, "/jobs"),
            "archives": set(store.list_keys(self._stack.config.entrypoint_bucket)),
        }

    def check(self) -> None:
        assert self._snapshot() == self._before


@pytest.fixture
def unchanged(api: httpx.Client, stack: Stack) -> Iterator[_Unchanged]:
    watch = _Unchanged(api, stack)
    yield watch
    watch.check()


# --- 1. unknown fields ------------------------------------------------------------------------


def test_a_job_with_unknown_fields_is_refused_naming_each(
    api: httpx.Client, unchanged: _Unchanged
) -> None:
    target = job_target(api, make_tar({"MLproject": OK_PROJECT}))
    unchanged.reset()
    answer = api.post("/jobs", json={**target, "timeout": 5, "made_up": True})
    problems = _problems(answer)
    assert problems == {"timeout": "unknown field 'timeout'", "made_up": "unknown field 'made_up'"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/experiments", {"name": "x", "descripton": "typo"}),
        ("/queues", {"name": "q-unknown", "max_workers": 3}),
    ],
)
def test_other_bodies_refuse_unknown_fields(
    api: httpx.Client, unchanged: _Unchanged, path: str, body: dict[str, Any]
) -> None:
    (unknown,) = set(body) - {"name"}
    assert _problems(api.post(path, json=body)) == {unknown: f"unknown field {unknown!r}"}


# --- 2. paging beyond int64 -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/experiments", "/entrypoints", "/jobs", "/models"])
@pytest.mark.parametrize(
    ("query", "field"),
    [("offset=9223372036854775808", "offset"), ("limit=9223372036854775808", "limit")],
)
def test_paging_beyond_its_bounds_is_a_422(
    api: httpx.Client, path: str, query: str, field: str
) -> None:
    assert field in _problems(api.get(f"{path}?{query}"))


def test_paging_bounds_hold_for_experiment_scoped_lists(api: httpx.Client) -> None:
    experiment = create_experiment(api)
    for path, params in (
        (f"/experiments/{experiment['id']}/webhooks", {}),
        ("/sweeps", {"experiment_id": experiment["id"]}),
    ):
        assert "offset" in _problems(api.get(path, params={**params, "offset": str(2**63)}))


# --- 3. NUL and control characters ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a\x00b", "a\x1b[31mb", "tab\there"])
def test_control_characters_in_names_are_refused(
    api: httpx.Client, unchanged: _Unchanged, name: str
) -> None:
    problems = _problems(api.post("/experiments", json={"name": name}))
    assert "control character" in problems["name"]


def test_nul_in_a_description_is_refused(api: httpx.Client, unchanged: _Unchanged) -> None:
    answer = api.post("/experiments", json={"name": unique("e"), "description": "x\x00"})
    assert "control character" in _problems(answer)["description"]


def test_nul_in_an_upload_filename_is_refused(api: httpx.Client, unchanged: _Unchanged) -> None:
    data = make_tar({"MLproject": OK_PROJECT, "nonce": unique("n")})
    # httpx would percent-escape NUL in the header: write the multipart body by hand.
    boundary = "hostile-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="a\x00b.tgz"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = api.post(
        "/entrypoints",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "control character" in _problems(answer)["archive.filename"]


@pytest.mark.parametrize(
    "text",
    [
        "entry_points:\n  main:\n    command: 'echo \x00'\n",
        'entry_points:\n  main:\n    command: "echo \\0"\n',
    ],
)
def test_nul_in_mlproject_text_is_refused(
    api: httpx.Client, unchanged: _Unchanged, text: str
) -> None:
    problems = _problems(upload(api, make_tar({"MLproject": text})))
    assert any("control character" in m for m in problems.values())


def test_nul_in_a_parameter_value_is_refused(api: httpx.Client, unchanged: _Unchanged) -> None:
    target = job_target(api, make_tar({"MLproject": OK_PROJECT, "nonce": unique("n")}))
    unchanged.reset()
    answer = api.post("/jobs", json={**target, "params": {"p": "a\x00b"}})
    assert "control character" in _problems(answer)["params.p"]


# --- 4. plugin path segments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/plugins/x%3Fy", "name"),
        ("/plugins/x%00", "name"),
        ("/plugins/x%0Ay/1.0.0", "name"),
        ("/plugins/x/1.0%3Fy", "version"),
        ("/plugins/x/1.0%01/archive", "version"),
        ("/plugins/x/not-a-version/yank", "version"),
    ],
)
def test_plugin_segments_outside_the_grammar_are_a_422(
    api: httpx.Client, stack: Stack, path: str, field: str
) -> None:
    method = "POST" if path.endswith("/yank") else "GET"
    assert field in _problems(api.request(method, path))
    with httpx.Client(base_url=stack.config.registry_url, timeout=30) as registry:
        assert field in _problems(registry.request(method, f"/api/v1{path}"))


def test_a_plugin_name_with_a_question_mark_is_not_looked_up_as_another(
    api: httpx.Client,
) -> None:
    name = f"p{unique('q').replace('-', '')}"
    assert api.post(
        "/plugins", files={"archive": ("p.whl", make_wheel(name, "1.0.0"))}
    ).status_code in (
        200,
        201,
    )
    assert api.get(f"/plugins/{name}").status_code == 200
    # Before: the api sent /api/v1/plugins/<name>?y and the registry answered <name>.
    assert api.get(f"/plugins/{name}%3Fy").status_code == 422


# --- 5. MLflow's refusals ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a%3Ab", "no-such-model", "a%25b"])
def test_mlflow_refusals_are_not_503(api: httpx.Client, name: str) -> None:
    answer = api.get(f"/models/{name}/versions")
    assert answer.status_code in (404, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_nul_in_a_model_name_never_reaches_mlflow(api: httpx.Client) -> None:
    assert _problems(api.get("/models/a%00b/versions"))["name"]


# --- 6. MLproject commands --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("echo {p!r}", "conversions"),
        ("echo {p:>5}", "conversions"),
        ("echo '{p}'", "inside single quotes"),
        ('echo "{p}"', "inside double quotes"),
        ("echo {p.__class__}", "not a parameter"),
    ],
)
def test_unsafe_placeholders_are_refused_at_upload(
    api: httpx.Client, unchanged: _Unchanged, command: str, says: str
) -> None:
    project = mlproject("hostile", command, p=("string", "x"))
    problems = _problems(upload(api, make_tar({"MLproject": project})))
    assert says in problems["MLproject.entry_points.main.command"]


def test_a_value_is_one_quoted_word_in_the_job(api: httpx.Client) -> None:
    project = mlproject("quoted", "printf '%s|' {p}", p=("string", "x"))
    target = job_target(api, make_tar({"MLproject": project, "nonce": unique("n")}))
    job = run_job(api, target, {"p": "$(id) `id` ';id;' \"x\""})
    assert job["status"] == "succeeded", job
    logs = api.get(f"/jobs/{job['id']}/logs").text
    assert "$(id) `id` ';id;' \"x\"|" in logs
    assert "uid=" not in logs


# --- 7. archives ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "says"),
    [
        (
            (("MLproject", OK_PROJECT.encode()), ("run.py", b"1"), ("run.py", b"2")),
            "more than once",
        ),
        (
            (
                ("MLproject", OK_PROJECT.encode()),
                ("big", bytes(200_000)),
                *(link_member("big", "big", tarfile.LNKTYPE) for _ in range(20)),
            ),
            "hard link",
        ),
        (
            (
                ("MLproject", OK_PROJECT.encode()),
                link_member("MLproject", "MLproject", tarfile.SYMTYPE),
            ),
            "more than once",
        ),
        (
            (("MLproject", OK_PROJECT.encode()), link_member("copy", "MLproject", tarfile.LNKTYPE)),
            "hard",
        ),
    ],
)
def test_duplicate_names_and_links_are_refused(
    api: httpx.Client, unchanged: _Unchanged, members: tuple[Any, ...], says: str
) -> None:
    problems = _problems(upload(api, tar_of(*members)))
    assert any(says in m for m in problems.values()), problems


# --- 8. bodies bounded before they are spooled ------------------------------------------------


def _declared_too_long(client: httpx.Client, path: str) -> httpx.Response:
    """The answer to a multipart upload that declares a Content-Length far over the limit and
    sends only its first bytes (httpx will not send less than it declares: a raw socket)."""
    url = httpx.URL(f"{str(client.base_url).rstrip('/')}{path}")
    head = [
        f"POST {url.raw_path.decode()} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "Content-Type: multipart/form-data; boundary=b",
        f"Content-Length: {MAX_BYTES * 100}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in client.headers.items() if k.lower() == "authorization"),
    ]
    first = b'--b\r\nContent-Disposition: form-data; name="archive"; filename="a.tgz"\r\n\r\n'
    with socket.create_connection((url.host, url.port or 80), timeout=30) as raw:
        raw.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + first)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers_text, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(
        line.split(": ", 1) for line in headers_text.decode().split("\r\n") if ": " in line
    )
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


@pytest.mark.parametrize("path", ["/entrypoints", "/plugins", "/entrypoints/validate"])
def test_a_declared_length_over_the_limit_answers_413(
    api: httpx.Client, unchanged: _Unchanged, path: str
) -> None:
    answer = _declared_too_long(api, path)
    problems = _problems(answer, 413)
    assert "limit" in problems["body"]


def test_the_registry_refuses_a_declared_length_over_the_limit(stack: Stack) -> None:
    with httpx.Client(base_url=stack.config.registry_url, timeout=30) as registry:
        assert "limit" in _problems(_declared_too_long(registry, "/api/v1/plugins"), 413)["body"]


@pytest.mark.parametrize("path", ["/entrypoints", "/plugins"])
def test_a_streamed_body_over_the_limit_answers_413(
    api: httpx.Client, unchanged: _Unchanged, path: str
) -> None:
    request = httpx.Request(
        "POST", "http://x", files={"archive": ("a.tgz", bytes(MAX_BYTES + 200_000))}
    )
    body, content_type = request.read(), request.headers["content-type"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    answer = api.post(path, content=chunks(), headers={"content-type": content_type})
    assert answer.status_code == 413, answer.text
    assert "limit" in json.dumps(answer.json())
