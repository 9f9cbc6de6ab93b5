"""Hostile input is refused with a 4xx that names the problem, before anything is stored."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import warnings
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, UploadFile
from pydantic import ValidationError
from theodolite_registry.schemas.plugins import PluginNamePath as RegistryPluginName
from theodolite_registry.schemas.plugins import PluginVersionPath as RegistryPluginVersion

from tests.fixtures.archives import make_tar
from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.mlproject import (
    EntryPointSpec,
    ParameterSpec,
    parse_mlproject,
    render_command,
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


def _mlproject_problems(text: str) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        parse_mlproject(text)
    return [f"{p.field}: {p.message}" for p in raised.value.problems]


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
    assert any("control character" in p for p in _mlproject_problems(text))


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


# --- 6. MLproject command placeholders --------------------------------------------------------

_DECLARED = "    parameters:\n      p: {type: string, default: x}\n"


def _command(command: str) -> str:
    return f"entry_points:\n  main:\n{_DECLARED}    command: {json.dumps(command)}\n"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("echo {p!r}", "conversions and format specs"),
        ("echo {p!s}", "conversions and format specs"),
        ("echo {p:>10}", "conversions and format specs"),
        ("echo '{p}'", "inside single quotes"),
        ('echo "{p}"', "inside double quotes"),
        ('echo "a $x {p} b"', "inside double quotes"),
        ("echo `{p}`", "inside backticks"),
        ("echo \\{p}", "after a backslash"),
        ("echo ${p}", "after $"),
        ("echo {p.__class__}", "not a parameter"),
        ("echo {p[0]}", "not a parameter"),
        ("echo {}", "not a parameter"),
        ("echo {0}", "not a parameter"),
        ("echo {q}", "not a parameter"),
        ("echo {p", "unbalanced braces"),
    ],
)
def test_unsafe_placeholders_are_refused_at_upload(command: str, says: str) -> None:
    (problem,) = _mlproject_problems(_command(command))
    assert problem.startswith("MLproject.entry_points.main.command: ")
    assert says in problem


@pytest.mark.parametrize(
    "command",
    [
        "python run.py --p {p} --q {p}",
        "echo '{{literal}}' {p}",  # escaped braces are text, in quotes or not
        "echo 'it''s' {p} \"done\"",
        "echo \\'{p}",  # the backslash escapes the quote before it, not the value
        "sh -c 'echo a' && echo {p}",
    ],
)
def test_plain_placeholders_outside_quotes_are_accepted(command: str) -> None:
    parse_mlproject(_command(command))


@pytest.mark.parametrize("name", ["a.b", "a[0]", "a b", "a:b", "a!r", "{a}", "1st"])
def test_parameter_names_are_plain_placeholders(name: str) -> None:
    text = (
        f"entry_points:\n  main:\n    parameters:\n      {json.dumps(name)}: string\n"
        "    command: 'true'\n"
    )
    assert any("parameter name" in p for p in _mlproject_problems(text))


@pytest.mark.parametrize(
    "value", ["$(id)", "`id`", "'; id; '", '"; id; "', "a'b\"c", "x\ny", "{p}", "\\"]
)
def test_each_value_is_quoted_exactly_once(value: str, tmp_path: Path) -> None:
    spec = parse_mlproject(_command("printf %s {p} {p}")).entry_points["main"]
    command = render_command(spec, {"p": value}, tmp_path)
    assert command == f"printf %s {shlex.quote(value)} {shlex.quote(value)}"
    assert shlex.split(command) == ["printf", "%s", value, value]


def test_a_stored_command_with_a_conversion_is_not_rendered(tmp_path: Path) -> None:
    # An archive stored before these checks: the worker refuses rather than runs it.
    spec = EntryPointSpec(command="echo {p!r}", parameters={"p": ParameterSpec()})
    with pytest.raises(ProblemsError, match="conversions"):
        render_command(spec, {"p": "$(id)"}, tmp_path)


# --- 7. archives ------------------------------------------------------------------------------

ARCHIVE_LIMITS = ArchiveLimits(max_bytes=100_000, max_members=10, max_unpacked_bytes=50_000)
_MLPROJECT = b"entry_points:\n  main:\n    command: 'true'\n"


def tar_of(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    """A tar.gz of exactly these members, duplicates and links included (the integration
    tests use it too)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def link_member(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _archive_problems(data: bytes, limits: ArchiveLimits = ARCHIVE_LIMITS) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        inspect_archive(data, limits)
    return [p.message for p in raised.value.problems]


def test_duplicate_member_names_are_refused_in_tar() -> None:
    data = tar_of(("MLproject", _MLPROJECT), ("run.py", b"1"), ("./run.py", b"2"))
    assert _archive_problems(data) == ["member './run.py' appears more than once"]


def test_duplicate_member_names_are_refused_in_zip() -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("MLproject", _MLPROJECT)
            archive.writestr("run.py", "1")
            archive.writestr("run.py", "2")
    assert _archive_problems(buffer.getvalue()) == ["member 'run.py' appears more than once"]


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_link_sharing_a_members_name_is_refused(kind: bytes) -> None:
    # The amplifier: one big file and links of the same name, each read as the big file.
    big = ("data.bin", bytes(40_000))
    data = tar_of(("MLproject", _MLPROJECT), big, link_member("MLproject", "data.bin", kind))
    assert any("'MLproject'" in p for p in _archive_problems(data))


def test_hard_links_are_refused_even_inside_the_archive() -> None:
    data = tar_of(("MLproject", _MLPROJECT), link_member("copy", "MLproject", tarfile.LNKTYPE))
    assert _archive_problems(data) == ["member 'copy' is a hard link; hard links are not allowed"]


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_members_neither_file_nor_folder_are_refused(kind: bytes) -> None:
    odd = tarfile.TarInfo("odd")
    odd.type = kind
    assert _archive_problems(tar_of(("MLproject", _MLPROJECT), odd)) == [
        "member 'odd' is not a regular file"
    ]


def test_a_folder_listed_twice_is_harmless() -> None:
    folder = tarfile.TarInfo("src")
    folder.type = tarfile.DIRTYPE
    contents = inspect_archive(tar_of(("MLproject", _MLPROJECT), folder, folder), ARCHIVE_LIMITS)
    assert set(contents.files) == {"MLproject"}


def test_inspection_stops_at_the_member_limit_as_it_streams() -> None:
    members = [(f"f{i}", b"x") for i in range(50_000)]
    data = tar_of(*members)
    read: list[str] = []
    original = tarfile.TarFile.next

    def counting(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        member = original(self)
        if member is not None:
            read.append(member.name)
        return member

    limits = ArchiveLimits(max_bytes=10**8, max_members=10, max_unpacked_bytes=10**8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tarfile.TarFile, "next", counting)
        assert _archive_problems(data, limits) == [
            "archive has more than 10 members; the limit is 10"
        ]
    assert len(set(read)) == 11  # tarfile.open reads the first header twice


def test_inspection_stops_at_the_size_limit_as_it_streams() -> None:
    members = [(f"f{i}", bytes(1000)) for i in range(100)]
    limits = ArchiveLimits(max_bytes=10**8, max_members=1000, max_unpacked_bytes=5_500)
    (message,) = _archive_problems(tar_of(*members), limits)
    assert message == "archive unpacks to more than 5500 bytes; the limit is 5500"


def test_extraction_writes_each_file_once_with_its_own_bytes(tmp_path: Path) -> None:
    data = tar_of(("MLproject", _MLPROJECT), ("a/run.py", b"print(1)"))
    extract_archive(data, tmp_path, ARCHIVE_LIMITS)
    assert (tmp_path / "a" / "run.py").read_bytes() == b"print(1)"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["MLproject", "run.py"]


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
