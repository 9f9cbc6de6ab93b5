"""The worker's conda_env builds: with py-rattler from a local channel made here, once per key,
reused, failed with the solver's message, and hostile files refused before anything runs."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

# py-rattler is the worker's extra conda, which `make install` installs: without it these tests
# fail on import (a broken install), never skip.
import rattler  # noqa: F401

from tests.fixtures.conda_channel import tiny_channel
from theodolite.environments import DeclaredEnvironment, declared_environment
from theodolite_worker import environments as worker_environments
from theodolite_worker.conda_envs import CondaFileError, create_command, parse_conda_env
from theodolite_worker.environments import (
    Capabilities,
    EnvironmentBuilder,
    EnvironmentBuildError,
    detect_capabilities,
)
from theodolite_worker.settings import WorkerSettings

TINY_ENV = b"name: tiny\nchannels: [conda-forge]\ndependencies:\n  - tinypkg=1.0\n"


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"file://{tiny_channel(tmp_path_factory.mktemp('channel'))}"


def _settings(tmp_path: Path, channels: list[str]) -> WorkerSettings:
    return WorkerSettings(
        work_dir=tmp_path, worker_id="conda-test", warm_pool=False, conda_channels=channels
    )


def _project(tmp_path: Path, text: bytes) -> tuple[Path, DeclaredEnvironment]:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "conda.yaml").write_bytes(text)
    return project, declared_environment({"conda_env": "conda.yaml"}, {"conda.yaml": text})


async def _quiet(message: str) -> None:
    pass


async def test_built_once_per_key_from_the_operators_channel_then_reused(
    tmp_path: Path, channel: str
) -> None:
    settings = _settings(tmp_path, [channel])
    builder = EnvironmentBuilder(settings)
    assert (builder.capabilities.conda or "").startswith("py-rattler ")
    project, declared = _project(tmp_path, TINY_ENV)
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    first, second = await asyncio.gather(
        builder.ensure_conda(project, declared, progress=progress),
        builder.ensure_conda(project, declared, progress=progress),
    )
    assert sorted([first.built, second.built]) == [False, True]
    assert first.path == second.path == builder.root / first.key
    said = subprocess.run(  # noqa: ASYNC221 - a short check after the builds
        [str(first.bin_dir / "tinypkg-hello")], capture_output=True, text=True, check=True
    ).stdout
    assert said == "tinypkg 1.0 says hello\n"
    assert (first.path / "share/tinypkg/data.txt").read_text() == "tinypkg data 1.0\n"
    # The file's conda-forge was not asked: the operator's channel replaces the file's.
    assert any(f"creating the environment: tinypkg=1.0 from {channel}" in m for m in messages)
    assert any("waiting for another build" in m for m in messages)
    again = await EnvironmentBuilder(settings).ensure_conda(project, declared, progress=_quiet)
    assert (again.built, again.key) == (False, first.key)
    # Another channel list is another environment.
    other = await EnvironmentBuilder(_settings(tmp_path, [channel, channel])).ensure_conda(
        project, declared, progress=_quiet
    )
    assert other.built and other.key != first.key


async def test_an_unknown_package_fails_with_the_solvers_message_and_caches_nothing(
    tmp_path: Path, channel: str
) -> None:
    builder = EnvironmentBuilder(_settings(tmp_path, [channel]))
    project, declared = _project(tmp_path, b"dependencies: [nosuchpkg=2.0]\n")
    with pytest.raises(EnvironmentBuildError) as raised:
        await builder.ensure_conda(project, declared, progress=_quiet)
    message = str(raised.value)
    assert "creating the environment: nosuchpkg=2.0" in message
    assert "py-rattler exited with 1" in message
    assert "No candidates were found for nosuchpkg" in message
    assert [p.name for p in builder.root.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("text", "forced", "refused"),
    [
        (b"dependencies: ['https://example.com/x-1.0-0.tar.bz2']", True, "not a package spec"),
        (b"dependencies: [./x-1.0-0.conda]", True, "not a package spec"),
        (b"dependencies: [--override-channels]", True, "options among the dependencies"),
        (b"dependencies: ['conda-forge::numpy']", True, "solves from its configured channels"),
        (b"channels: ['https://evil.example/c']\ndependencies: [x]", False, "not a channel name"),
        (b"dependencies: ['http://x/c::numpy']", False, "not a channel name"),
        (b"dependencies: [python, {pip: ['six @ https://x/six.whl']}]", True, "not a requirement"),
        (b"dependencies: [python]\nvariables: {A: b}", True, "variables not supported"),
    ],
)
async def test_a_hostile_file_is_refused_before_anything_runs(
    tmp_path: Path, text: bytes, forced: bool, refused: str
) -> None:
    # A program that does not exist: reaching it would fail otherwise than with the refusal.
    capabilities = Capabilities(conda="micromamba 2.0", conda_program="/nonexistent/micromamba")
    settings = _settings(tmp_path, ["file:///nonexistent"] if forced else [])
    project, declared = _project(tmp_path, text)
    with pytest.raises(EnvironmentBuildError, match=refused):
        await EnvironmentBuilder(settings, capabilities).ensure_conda(
            project, declared, progress=_quiet
        )


def test_a_file_as_conda_env_create_reads_it() -> None:
    parsed = parse_conda_env(
        b"name: x\nchannels: [conda-forge, defaults]\n"
        b"dependencies:\n  - python=3.11\n  - numpy >=1.26\n  - pip\n  - pip:\n    - six==1.15.0\n",
        "conda.yaml",
    )
    assert parsed.channels == ("conda-forge", "defaults")
    assert parsed.specs == ("python=3.11", "numpy >=1.26", "pip")
    assert parsed.pip == ("six==1.15.0",)
    with pytest.raises(CondaFileError, match="only package specs and one pip: list"):
        parse_conda_env(b"dependencies: [{conda: [x]}]", "conda.yaml")


def test_a_program_creates_the_prefix_from_the_channels_or_its_own_defaults(
    tmp_path: Path,
) -> None:
    prefix = tmp_path / "env"
    argv = create_command("/opt/micromamba", prefix, ("c1",), ("x=1",), cache_dir=tmp_path)
    assert argv == ["/opt/micromamba", "create", "-y", "-p", str(prefix)] + [
        "--override-channels", "-c", "c1", "x=1"
    ]  # fmt: skip
    assert create_command("conda", prefix, (), ("x",), cache_dir=tmp_path)[-1:] == ["x"]
    assert "--override-channels" not in create_command("conda", prefix, (), (), cache_dir=tmp_path)


def test_py_rattler_is_announced_only_where_the_channels_are_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A conda program on PATH would be announced first: look for none, so this runs everywhere.
    monkeypatch.setattr(worker_environments, "CONDA_PROGRAMS", ())
    assert detect_capabilities(_settings(tmp_path, [])).conda is None
    found = detect_capabilities(_settings(tmp_path, ["file:///srv/channel"]))
    assert (found.conda or "").startswith("py-rattler 0.")
    assert found.support().kinds() == ["none", "python", "conda"]
