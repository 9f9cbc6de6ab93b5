"""Each image's Python environment, built as its Dockerfile builds it, starts and answers: what
``docker build`` and ``docker run`` would show, on a machine without Docker (issue 15).

The build stage of each Dockerfile is read, not restated: the folders it copies (into a fresh
tree, as ``COPY`` would), its lock and the project's distributions it installs on top, its
runtime ``ENV`` and ``CMD``. The same uv commands then run here into a fresh venv: ``uv venv``,
``uv pip sync --require-hashes LOCK``, ``uv pip install --no-deps --no-build-isolation ...``,
``uv pip check``. The service is started with its image's ``CMD`` and nothing of the dev venv on
its path, against the session's stack, and must answer its health endpoints (a worker: the api
lists it live on its queue).

uv's cache (``UV_CACHE_DIR``, else its default) is shared between runs, so only the first one
downloads. torch's CPU build comes from the PyTorch CPU index, as in the Dockerfiles, or from
pip's find-links where one is set (``PIP_FIND_LINKS`` or pip's configuration: these machines
hold the same wheel there and cannot reach that index).
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import Stack
from theodolite.devstack import (
    api_env,
    free_ports,
    http_ok,
    start_process,
    stop_process,
    wait_until,
    worker_env,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ROOT / "deploy" / "docker"
UV = Path(sys.executable).with_name("uv")
# What a checkout has and a build context does not (see .dockerignore), or builds leave behind.
_LOCAL_STATE = shutil.ignore_patterns(".venv", "build", "*.egg-info", "__pycache__", "sync.py")
# A first build downloads torch and the rest (minutes); a cached one takes well under one.
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class BuildStage:
    """What a Dockerfile's build stage copies and installs, and what its image runs."""

    copies: list[str]
    lock: str
    cpu_torch: bool
    distributions: list[str]
    env: dict[str, str]
    command: list[str]


def _logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined and comment lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not pending.endswith("\\"):
            continue
        if pending:
            if raw.lstrip().startswith("#"):
                continue
            pending = pending[:-1] + " " + raw.strip()
        else:
            pending = raw.strip()
        if not pending.endswith("\\"):
            if pending:
                lines.append(pending)
            pending = ""
    return lines


def read_dockerfile(name: str, build_args: dict[str, str] | None = None) -> BuildStage:
    """The build stage (``FROM ... AS build``) and the runtime stage's ENV and CMD of ``name``,
    built with its ARG defaults or ``build_args``."""
    lines = _logical_lines((DOCKERFILES / f"{name}.Dockerfile").read_text())
    args = {
        m.group(1): m.group(2) for line in lines if (m := re.fullmatch(r"ARG (\w+)=(\S+)", line))
    } | (build_args or {})
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([line])
        elif stages:
            stages[-1].append(line)
    (build,) = [stage for stage in stages if stage[0].endswith(" AS build")]
    runtime = stages[-1]

    def expand(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)

    copies = [
        shlex.split(line)[1] for line in build if line.startswith("COPY ") and "--from" not in line
    ]
    runs = " && ".join(expand(line[4:]) for line in build if line.startswith("RUN "))
    lock = re.search(r'uv pip sync --require-hashes "?(deploy/locks/[\w.-]+)"?', runs)
    install = re.search(
        r"uv pip install --no-deps --no-build-isolation (.+?) && uv pip check", runs
    )
    assert lock and install, f"{name}: no `uv pip sync` of a lock, or no install with a check"
    env: dict[str, str] = {}
    for line in runtime:
        if line.startswith("ENV "):
            env.update(token.split("=", 1) for token in shlex.split(line[4:]))  # type: ignore[misc]
    (cmd,) = [line for line in runtime if line.startswith("CMD ")]
    return BuildStage(
        copies=[c for c in copies if not c.startswith("deploy/locks/")],
        lock=lock.group(1),
        # torch's CPU build is on the PyTorch CPU index only (the Dockerfiles look there for it).
        cpu_torch="\ntorch==2.13.0+cpu " in (ROOT / lock.group(1)).read_text(),
        distributions=shlex.split(install.group(1)),
        env=env,
        command=[part.strip(' "') for part in cmd[4:].strip("[]").split(",")],
    )


def local_find_links() -> str | None:
    """pip's own find-links here (PIP_FIND_LINKS, else its configuration), where one is set."""
    if os.environ.get("PIP_FIND_LINKS"):
        return os.environ["PIP_FIND_LINKS"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip() or None if done.returncode == 0 else None


def _uv_env(venv: Path, stage: BuildStage) -> dict[str, str]:
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(venv),
        "UV_COMPILE_BYTECODE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }
    if stage.cpu_torch:
        if find_links := local_find_links():
            env["UV_FIND_LINKS"] = find_links
        else:
            env["UV_EXTRA_INDEX_URL"] = "https://download.pytorch.org/whl/cpu"
            env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env


def build_environment(name: str, workdir: Path) -> tuple[Path, BuildStage, float]:
    """The image's /opt/venv, built here: its venv, how long the build took."""
    stage = read_dockerfile(name)
    source = workdir / "src"
    for copied in stage.copies:
        shutil.copytree(ROOT / copied, source / copied, ignore=_LOCAL_STATE)
    (source / "deploy" / "locks").mkdir(parents=True)
    shutil.copy(ROOT / stage.lock, source / stage.lock)
    venv = workdir / "venv"
    env = _uv_env(venv, stage)
    distributions = [
        found
        for pattern in stage.distributions
        for found in (sorted(glob.glob(pattern, root_dir=source)) if "*" in pattern else [pattern])
    ]
    started = time.monotonic()
    for argv in (
        [str(UV), "venv", str(venv), "--python", os.path.realpath(sys.executable)],
        [str(UV), "pip", "sync", "--require-hashes", stage.lock],
        [str(UV), "pip", "install", "--no-deps", "--no-build-isolation", *distributions],
        [str(UV), "pip", "check"],
    ):
        done = subprocess.run(
            argv, cwd=source, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
        assert done.returncode == 0, (
            f"{shlex.join(argv)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return venv, stage, time.monotonic() - started


def container_env(venv: Path, stage: BuildStage, service_env: dict[str, str]) -> dict[str, str]:
    """The image's ENV with /opt/venv at ``venv``, then what compose would set for the service."""
    env = {k: v.replace("/opt/venv", str(venv)) for k, v in stage.env.items()}
    env["PATH"] = f"{venv}/bin:/usr/local/bin:/usr/bin:/bin"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"
    env.pop("MPLCONFIGDIR", None)  # /tmp/matplotlib: shared with whatever else runs here
    return {**env, **service_env}


@pytest.fixture
def image_env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, BuildStage]]:
    name = request.param
    venv, stage, seconds = build_environment(name, tmp_path)
    size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split()[
        0
    ]
    print(f"\n{name}: environment built in {seconds:.0f} s, venv {size}")
    yield venv, stage


def _run(stack: Stack, name: str, venv: Path, stage: BuildStage, env: dict[str, str]) -> str:
    """Start the image's CMD from ``venv``; the process's name in the stack."""
    argv = [
        shutil.which(stage.command[0], path=f"{venv}/bin") or stage.command[0],
        *stage.command[1:],
    ]
    assert argv[0].startswith(str(venv)), argv
    process = f"image-{name}-{uuid.uuid4().hex[:6]}"
    start_process(stack.config, process, argv, container_env(venv, stage, env))
    return process


def _log(stack: Stack, process: str) -> str:
    path = stack.config.state_dir / "logs" / f"{process}.log"
    return path.read_text()[-4000:] if path.exists() else ""


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("image_env", ["api"], indirect=True)
def test_the_api_image_starts_and_is_ready(
    stack: Stack, image_env: tuple[Path, BuildStage]
) -> None:
    venv, stage = image_env
    port, internal_port = free_ports(2)
    process = _run(stack, "api", venv, stage, api_env(stack.config, port, internal_port))
    try:
        wait_until(stack.config, process, http_ok(f"http://127.0.0.1:{port}/readyz"), 90)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        stop_process(stack.config, process)
    # No ML framework in the api's image.
    assert not list((venv / "lib").glob("python3*/site-packages/torch"))


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("image_env", ["plugin-registry"], indirect=True)
def test_the_registry_image_starts_and_is_ready(
    stack: Stack, image_env: tuple[Path, BuildStage]
) -> None:
    venv, stage = image_env
    (port,) = free_ports(1)
    env = {
        **stack.config.service_env(),
        "THEODOLITE_REGISTRY_HOST": "127.0.0.1",
        "THEODOLITE_REGISTRY_PORT": str(port),
        "THEODOLITE_REGISTRY_MIGRATE_ON_START": "false",
    }
    process = _run(stack, "registry", venv, stage, env)
    try:
        wait_until(stack.config, process, http_ok(f"http://127.0.0.1:{port}/readyz"), 90)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        stop_process(stack.config, process)
    # torch's CPU build, and no CUDA library.
    assert not list((venv / "lib").glob("python3*/site-packages/nvidia*"))


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("image_env", ["worker"], indirect=True)
def test_the_cpu_worker_image_starts_and_serves_its_queue(
    stack: Stack, image_env: tuple[Path, BuildStage]
) -> None:
    venv, stage = image_env
    name = f"image-worker-{uuid.uuid4().hex[:6]}"
    env = worker_env(stack.config, "cpu", name)
    process = _run(stack, "worker", venv, stage, env)

    def serving() -> bool:
        response = httpx.get(f"{stack.api}/queues/cpu", headers=stack.headers, timeout=5)
        ids = [worker["id"] for worker in response.json().get("workers") or []]
        return env["THEODOLITE_WORKER_WORKER_ID"] in ids

    try:
        wait_until(stack.config, process, serving, 120)
    finally:
        stop_process(stack.config, process, grace_s=30)
    assert "serving queue cpu" in _log(stack, process)
    # The worker's jobs get torch's CPU build, and no CUDA library.
    probe = subprocess.run(
        [f"{venv}/bin/python", "-c", "import torch, art, mlflow; print(torch.__version__)"],
        capture_output=True, text=True, timeout=300, env=container_env(venv, stage, {}),
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.split()[-1] == "2.13.0+cpu"
    assert not list((venv / "lib").glob("python3*/site-packages/nvidia*"))
