"""The worker's python_env cache: built once per key with uv, reused, locked, refused clearly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from theodolite.environments import declared_environment, environment_key
from theodolite_worker.environments import (
    EnvironmentBuilder,
    EnvironmentBuildError,
    detect_capabilities,
    uv_environment,
)
from theodolite_worker.settings import WorkerSettings

SIX_ENV = b"python: '3.11'\ndependencies:\n  - six==1.15.0\n"


def _settings(tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(work_dir=tmp_path, worker_id="env-test", warm_pool=False)


async def test_one_build_per_key_and_the_second_caller_reuses_it(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(_settings(tmp_path))
    declared = declared_environment({"python_env": "python_env.yaml"}, {"python_env.yaml": SIX_ENV})
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    first, second = await asyncio.gather(
        builder.ensure(declared, progress=progress), builder.ensure(declared, progress=progress)
    )
    assert sorted([first.built, second.built]) == [False, True]
    assert first.path == second.path == builder.root / first.key
    version = subprocess.run(  # noqa: ASYNC221 - a short check after the builds
        [str(first.bin_dir / "python"), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "1.15.0"
    assert any("installing dependencies: six==1.15.0" in m for m in messages)
    assert any("waiting for another build" in m for m in messages)
    # Nothing half-built is left beside it; a later call finds it at once.
    assert [p.name for p in builder.root.iterdir() if p.name.startswith(".build-")] == []
    again = await EnvironmentBuilder(_settings(tmp_path)).ensure(declared, progress=progress)
    assert (again.built, again.key) == (False, first.key)


async def test_a_failed_install_says_what_uv_said_and_caches_nothing(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(_settings(tmp_path))
    declared = declared_environment(
        {"python_env": "p.yaml"}, {"p.yaml": b"dependencies: [six==0.0.0.999]"}
    )

    async def progress(message: str) -> None:
        pass

    with pytest.raises(EnvironmentBuildError, match=r"six==0\.0\.0\.999") as raised:
        await builder.ensure(declared, progress=progress)
    assert "uv exited with" in str(raised.value)
    assert not any(p.is_dir() and not p.name.startswith(".") for p in builder.root.iterdir())


async def test_a_python_the_worker_lacks_is_refused_by_name(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(_settings(tmp_path))
    declared = declared_environment({"python_env": "p.yaml"}, {"p.yaml": b"python: '3.4'"})

    async def progress(message: str) -> None:
        pass

    with pytest.raises(EnvironmentBuildError, match="asks for Python 3.4; this worker has 3.11"):
        await builder.ensure(declared, progress=progress)


def test_uv_runs_without_the_workers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THEODOLITE_STORAGE_SECRET_KEY", "not-for-builds")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-builds")
    env = uv_environment(_settings(tmp_path), tmp_path / "home")
    assert "not-for-builds" not in env.values()
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    support = detect_capabilities(_settings(tmp_path)).support()
    assert support.uv is not None
    assert "python" in support.kinds() and support.has_python("3.11")
    assert not support.has_python("3.9")


async def test_a_build_waits_for_another_process_holding_the_keys_lock(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(_settings(tmp_path))
    declared = declared_environment({"python_env": "p.yaml"}, {"p.yaml": SIX_ENV + b"# held\n"})
    version, _ = builder.capabilities.interpreter("3.11") or ("", "")
    lock = builder.root / f".{environment_key(declared, version)}.lock"
    builder.root.mkdir(parents=True, exist_ok=True)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(1.5)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"held\n"
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    started = time.monotonic()
    built = await builder.ensure(declared, progress=progress)
    assert time.monotonic() - started >= 1.0  # it waited for the other replica's build
    assert messages[0].startswith("python_env: waiting for another build")
    assert built.built
    await holder.wait()


@pytest.mark.parametrize(
    "requirement",
    [
        "-r requirements.txt",
        "--index-url=http://169.254.169.254/simple",
        "evil @ https://attacker.example/evil-1.0-py3-none-any.whl",
        "git+https://attacker.example/evil.git",
        "file:///etc/passwd",
        "./vendored",
        "/root/.config/theodolite",
        "evil-1.0.tar.gz",
    ],
)
async def test_a_hostile_requirement_is_refused_before_uv_runs(
    tmp_path: Path, requirement: str
) -> None:
    # The build runs outside any job's sandbox: only packages by name, from the index.
    builder = EnvironmentBuilder(_settings(tmp_path))
    text = f"python: '3.11'\ndependencies:\n  - {requirement!r}\n".encode()
    declared = declared_environment({"python_env": "p.yaml"}, {"p.yaml": text})
    said: list[str] = []

    async def progress(message: str) -> None:
        said.append(message)

    with pytest.raises(EnvironmentBuildError, match="not supported|not a requirement by name"):
        await builder.ensure(declared, progress=progress)
    assert not any("installing" in m for m in said)  # uv never saw it
    assert not any(p.is_dir() and not p.name.startswith(".") for p in builder.root.iterdir())
