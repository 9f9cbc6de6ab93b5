"""Hostile input is refused with a 4xx that names the problem, before anything is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, UploadFile
from pydantic import ValidationError
from theodolite_registry.schemas.plugins import PluginNamePath as RegistryPluginName
from theodolite_registry.schemas.plugins import PluginVersionPath as RegistryPluginVersion

from tests.fixtures.archives import make_tar, mlproject_problems
from theodolite.archives import ArchiveLimits
from theodolite.mlproject import (
    type_error,
)
from theodolite.problems import ProblemsError, filename_problem
from theodolite.settings import MlflowSettings
from theodolite.web.errors import (
    FORM_OVERHEAD_BYTES,
    ArchiveUploadRoute,
    DomainError,
    InvalidArchive,
    install_error_handlers,
)
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient, plugin_path
from theodolite_api.entrypoints.uploads import describe_archive
from theodolite_api.schemas.common import PluginNamePath, PluginVersionPath
from theodolite_api.schemas.experiments import ExperimentCreate
from theodolite_api.schemas.jobs import JobCreate, JobPublic
from theodolite_api.schemas.queues import QueueCreate
from theodolite_api.schemas.sweeps import SweepCreate
from theodolite_api.schemas.webhooks import WebhookCreate, WebhookUpdate

ZERO = "00000000-0000-0000-0000-000000000000"
JOB = {"experiment_id": ZERO, "entrypoint_id": ZERO}


async def _post(model: type[Any], body: dict[str, Any]) -> httpx.Response:
    """What a route taking ``model`` as its body answers to ``body``."""
    app = FastAPI()
    install_error_handlers(app)

    async def thing(payload: Any) -> None:
        return None

    thing.__annotations__["payload"] = model  # the body's model, chosen per test
    app.post("/thing")(thing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/thing", json=body)


# --- 1. unknown fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (JobCreate, JOB),
        (SweepCreate, JOB),
        (ExperimentCreate, {"name": "e"}),
        (QueueCreate, {"name": "q"}),
        (WebhookCreate, {"url": "https://example.org/hook"}),
        (WebhookUpdate, {}),
    ],
)
def test_every_request_body_refuses_unknown_fields(model: type[Any], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate({**body, "made_up": 1})
    assert [e["loc"] for e in raised.value.errors()] == [("made_up",)]


async def test_unknown_fields_are_named_each_in_the_problem_list() -> None:
    answer = await _post(JobCreate, {**JOB, "timeout": 5, "bogus": True})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problems = answer.json()["problems"]
    assert {p["field"] for p in problems} == {"timeout", "bogus"}
    assert {p["message"] for p in problems} == {"unknown field 'timeout'", "unknown field 'bogus'"}


def test_response_models_keep_accepting_extras() -> None:
    assert JobPublic.model_config.get("extra") != "forbid"


# --- 3. control characters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ExperimentCreate, {"name": "a\x00b"}, "name"),
        (ExperimentCreate, {"name": "e", "description": "line\x00"}, "description"),
        (QueueCreate, {"name": "q", "description": "\x1b[31mred"}, "description"),
        (JobCreate, {**JOB, "entry_point": "main\x00"}, "entry_point"),
        (JobCreate, {**JOB, "queue": "cpu\x7f"}, "queue"),
        (SweepCreate, {**JOB, "name": "s\x00"}, "name"),
        (WebhookCreate, {"url": "https://example.org/\x00"}, "url"),
    ],
)
def test_names_and_texts_refuse_control_characters(
    model: type[Any], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    (error,) = raised.value.errors()
    assert error["loc"] == (field,)
    assert "control character" in error["msg"]


def test_descriptions_keep_their_line_breaks() -> None:
    assert ExperimentCreate(name="e", description="one\n\ttwo\r\n").description == "one\n\ttwo\r\n"


async def test_a_nul_in_a_name_answers_422_naming_the_field() -> None:
    answer = await _post(ExperimentCreate, {"name": "a\x00b"})
    assert answer.status_code == 422
    (problem,) = answer.json()["problems"]
    assert problem["field"] == "name"
    assert "U+0000" in problem["message"]


@pytest.mark.parametrize(
    "text",
    [
        "entry_points:\n  main:\n    command: 'echo \x00'\n",  # in the text itself
        'entry_points:\n  main:\n    command: "echo \\0"\n',  # made by a YAML escape
        'entry_points:\n  "ma\\x1bin":\n    command: "true"\n',
        'entry_points:\n  main:\n    parameters:\n      p: {default: "a\\0"}\n'
        "    command: 'echo {p}'\n",
    ],
)
def test_mlproject_text_with_control_characters_is_refused(text: str) -> None:
    assert any("control character" in p for p in mlproject_problems(text))


@pytest.mark.parametrize(
    ("declared", "value"),
    [("string", "a\x00b"), ("path", "data/\x00"), ("int", "1\x00"), ("uri", "s3://b/\x1b")],
)
def test_parameter_values_with_control_characters_are_refused(declared: str, value: str) -> None:
    assert "control character" in (type_error(declared, value) or "")


def test_string_values_may_hold_line_breaks() -> None:
    assert type_error("string", "two\nlines\tand a tab") is None


def test_archive_text_with_nul_is_refused_before_storing() -> None:
    project = "entry_points:\n  main:\n    command: 'true'\n"
    data = make_tar({"MLproject": project, "graph.yaml": "steps: {}\n\x00"})
    with pytest.raises(InvalidArchive) as raised:
        describe_archive(data, ArchiveLimits())
    assert [p.field for p in raised.value.problems] == ["graph"]


@pytest.mark.parametrize("filename", ["a\x00.tar.gz", "x\n.tgz", "\x1b[2J.zip", "a" * 256])
def test_hostile_upload_filenames_are_named(filename: str) -> None:
    problem = filename_problem(filename)
    assert problem is not None and problem.field == "archive.filename"


def test_plain_upload_filenames_pass() -> None:
    assert filename_problem("my project (v2).tar.gz") is None
    assert filename_problem(None) is None


# --- 4. plugin path segments ------------------------------------------------------------------


def _segment_app() -> FastAPI:
    """The api's and the registry's path segment types, on a route of their own."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/{name}/{version}")
    async def api_side(name: PluginNamePath, version: PluginVersionPath) -> dict[str, str]:
        return {"name": name, "version": version}

    @app.get("/registry/{name}/{version}")
    async def registry_side(
        name: RegistryPluginName, version: RegistryPluginVersion
    ) -> dict[str, str]:
        return {"name": name, "version": version}

    return app


@pytest.mark.parametrize("side", ["api", "registry"])
@pytest.mark.parametrize(
    ("name", "version", "field"),
    [
        ("x%3Fy", "1.0.0", "name"),
        ("x%00", "1.0.0", "name"),
        ("x%0A", "1.0.0", "name"),
        ("-x", "1.0.0", "name"),
        ("x", "1.0%3F", "version"),
        ("x", "1.0%00", "version"),
        ("x", "1.0%20", "version"),
        ("x", "latest", "version"),
    ],
)
async def test_plugin_segments_outside_the_grammar_answer_422(
    side: str, name: str, version: str, field: str
) -> None:
    transport = httpx.ASGITransport(app=_segment_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get(f"/{side}/{name}/{version}")
    assert answer.status_code == 422
    assert [p["field"] for p in answer.json()["problems"]] == [field]


@pytest.mark.parametrize(
    ("name", "version"),
    [("data", "0.1.0"), ("theodolite-plugin-data", "1.0.2"), ("My_Plugin.x", "1!2.0rc1+cpu.1")],
)
async def test_plugin_names_and_pep440_versions_pass(name: str, version: str) -> None:
    transport = httpx.ASGITransport(app=_segment_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for side in ("api", "registry"):
            answer = await client.get(f"/{side}/{name}/{version}")
            assert answer.json() == {"name": name, "version": version}


def test_registry_paths_quote_each_segment() -> None:
    assert plugin_path("x?y") == "/api/v1/plugins/x%3Fy"
    assert plugin_path("a/b", "1.0#x", "archive") == "/api/v1/plugins/a%2Fb/1.0%23x/archive"


async def test_the_api_refuses_a_hostile_plugin_filename_before_forwarding() -> None:
    forwarded: list[httpx.Request] = []

    def registry_side(request: httpx.Request) -> httpx.Response:
        forwarded.append(request)
        return httpx.Response(201)

    transport = httpx.MockTransport(registry_side)
    async with httpx.AsyncClient(transport=transport) as http:
        registry = RegistryClient("http://registry", http)
        with pytest.raises(ProblemsError) as raised:
            await registry.upload("p\x00.whl", b"PK")
    assert [p.field for p in raised.value.problems] == ["archive.filename"]
    assert forwarded == []


# --- 5. MLflow's answers ----------------------------------------------------------------------


def _mlflow(status: int, body: Any) -> tuple[MlflowReader, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return MlflowReader(MlflowSettings(tracking_uri="http://mlflow"), http), seen


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad name 'a:b'"}, 422),
        (400, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}, 404),
        (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}, 404),
        (400, "not even an error body", 422),
        (500, {"error_code": "INTERNAL_ERROR", "message": "boom"}, 503),
        (503, "down", 503),
    ],
)
async def test_mlflow_errors_map_to_what_they_mean(status: int, body: Any, expected: int) -> None:
    reader, _ = _mlflow(status, body)
    with pytest.raises(DomainError) as raised:
        await reader.model_versions("a:b")
    assert raised.value.status_code == expected
    if expected != 503:
        assert raised.value.detail.endswith(body["message"] if isinstance(body, dict) else "")


async def test_model_names_are_sent_as_quoted_query_values() -> None:
    reader, seen = _mlflow(200, {"model_versions": []})
    await reader.model_versions("a:b&c=d?e")
    assert seen[0].url.params["name"] == "a:b&c=d?e"
    assert seen[1].url.params["filter"] == "name='a:b&c=d?e'"


async def test_a_control_character_in_a_model_name_never_reaches_mlflow() -> None:
    reader, seen = _mlflow(200, {})
    with pytest.raises(DomainError) as raised:
        await reader.model_versions("a\x00b")
    assert raised.value.status_code == 422
    assert seen == []


@pytest.mark.parametrize(("status", "expected"), [(404, 404), (400, 404), (502, 503)])
async def test_artifact_answers_keep_mlflow_failing_apart(status: int, expected: int) -> None:
    reader, _ = _mlflow(status, {"error_code": "X", "message": "m"})
    with pytest.raises(DomainError) as raised:
        await reader.open_artifact("run", "a/b.txt")
    assert raised.value.status_code == expected


# --- 8. bodies bounded before they are spooled ------------------------------------------------


def _upload_app(max_bytes: int) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    app.state.settings = SimpleNamespace(archive_limits=SimpleNamespace(max_bytes=max_bytes))
    install_error_handlers(app)
    router = APIRouter(route_class=ArchiveUploadRoute)
    spooled: list[int] = []

    @router.post("/upload")
    async def upload(archive: UploadFile) -> dict[str, int]:
        spooled.append(archive.size or 0)
        return {"size": archive.size or 0}

    app.include_router(router)
    return app, spooled


async def _send(app: FastAPI, content: Any, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/upload", content=content, headers=headers)


def _form(size: int) -> tuple[bytes, dict[str, str]]:
    request = httpx.Request("POST", "http://x", files={"archive": ("a.tgz", bytes(size))})
    return request.read(), dict(request.headers)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    app, spooled = _upload_app(1000)
    body, headers = _form(10)
    headers["content-length"] = str(1000 + FORM_OVERHEAD_BYTES + 1)
    answer = await _send(app, body, headers)  # the body is short: only the header is read
    assert answer.status_code == 413
    assert answer.json()["problems"] == [
        {"field": "body", "message": f"larger than the limit of {1000 + FORM_OVERHEAD_BYTES} bytes"}
    ]
    assert spooled == []


async def test_a_streamed_body_is_cut_at_the_limit() -> None:
    app, spooled = _upload_app(1000)
    body, headers = _form(200_000)
    del headers["content-length"]
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            read.append(start)
            yield body[start : start + 4096]

    answer = await _send(app, chunks(), headers)
    assert answer.status_code == 413
    assert "limit" in answer.json()["detail"]
    assert spooled == []
    assert len(read) * 4096 < 1000 + FORM_OVERHEAD_BYTES + 2 * 4096  # stopped, not drained


async def test_a_body_within_the_limit_is_taken() -> None:
    app, spooled = _upload_app(1000)
    body, headers = _form(900)
    assert (await _send(app, body, headers)).json() == {"size": 900}


# --- sandbox limits and dependencies a caller sends ---------------------------------------------


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"memory_bytes": -1}, "limits.memory_bytes"),
        ({"memory_bytes": 0}, "limits.memory_bytes"),
        ({"memory_bytes": "lots"}, "limits.memory_bytes"),
        ({"memory_bytes": "4 PiB"}, "limits.memory_bytes"),  # no such unit
        ({"file_size_bytes": 2**64}, "limits.file_size_bytes"),  # past what an rlimit takes
        ({"cpu_seconds": 10**30}, "limits.cpu_seconds"),
        ({"processes": [1]}, "limits.processes"),
        ({"memory": "1 GiB"}, "limits.memory"),  # not a limit
    ],
)
async def test_hostile_sandbox_limits_are_a_422_naming_the_limit(
    limits: dict[str, Any], field: str
) -> None:
    # A job's own limits, and a queue's maxima (administrators only, but as strictly checked).
    for model, body, named in (
        (JobCreate, {**JOB, "limits": limits}, field),
        (QueueCreate, {"name": "q", "max_limits": limits}, f"max_{field}"),
    ):
        answer = await _post(model, body)
        assert answer.status_code == 422, (model, limits)
        assert [p["field"] for p in answer.json()["problems"]] == [named]


def test_a_limit_may_be_written_as_people_write_sizes() -> None:
    job = JobCreate.model_validate({**JOB, "limits": {"memory_bytes": "1.5 GiB", "processes": 8}})
    assert job.limits is not None
    assert (job.limits.memory_bytes, job.limits.processes) == (int(1.5 * 1024**3), 8)


async def test_dependencies_must_be_job_ids_and_at_most_a_hundred() -> None:
    for depends_on, field in (
        (["not-a-job"], "depends_on.0"),
        ([ZERO] * 101, "depends_on"),
        ("one-id", "depends_on"),
    ):
        answer = await _post(JobCreate, {**JOB, "depends_on": depends_on})
        assert answer.status_code == 422
        assert [p["field"] for p in answer.json()["problems"]] == [field], depends_on
