"""Declared environments, built as ``mlflow run --env-manager uv`` (or ``conda``) would: what
this worker can build (announced in its heartbeat), and a cache of ``python_env`` virtual
environments and ``conda_env`` prefixes.

A ``python_env`` is built with uv into a folder named by its cache key (the environment file's
hash and the interpreter's version), once: a file lock per key serialises builders on one host
(worker replicas included), each builds into a temporary folder and renames it into place, so
no job ever sees half an environment. uv runs with an allow-listed environment (never the
worker's credentials), no interpreter downloads and only the configured package index.

A ``conda_env`` (conda_envs.py) is built under the same lock, by the same runner, but in place:
conda packages write their prefix into scripts and shebangs at install, so a prefix cannot be
renamed; its ready file, written last, is what says it is whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theodolite.environments import (
    DeclaredEnvironment,
    EnvironmentSupport,
    environment_key,
    minor_version,
    mlproject_environment,
)
from theodolite.problems import ProblemsError
from theodolite_worker.conda_envs import (
    CondaFileError,
    channel_refusal,
    conda_key,
    create_command,
    parse_conda_env,
    rattler_available,
    rattler_version,
    spec_refusal,
)
from theodolite_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

READY_FILE = ".theodolite-environment.json"
LOCK_POLL_S = 0.25
TAIL_LINES = 20
CONDA_PROGRAMS = ("micromamba", "mamba", "conda")
# What uv may see of the worker's environment besides what the builder sets: nothing secret.
UV_INHERITED = (
    "PATH",
    "LANG",
    "TZ",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)

Report = Callable[[str], Awaitable[None]]


class EnvironmentBuildError(Exception):
    """A declared environment could not be built or used here; the message says why."""


# A requirement by name (extras, version specifiers, markers): never a URL, a path or an option.
_NAMED_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[A-Za-z0-9._,\s-]*\])?[^@/\\]*")


def requirement_refusal(requirement: str) -> str | None:
    """Why the builder will not install ``requirement``, or None. The build runs outside the
    job's sandbox, on the worker's network: only packages by name from the configured index,
    no options (``-r``, ``--index-url``), direct URLs (``pkg @ https://...``) or local paths."""
    if requirement[:1] == "-":
        return (
            f"options among the requirements ({requirement!r}) are not supported; "
            "list the requirements themselves"
        )
    name = requirement.split(";")[0].strip().lower()
    if (
        "://" in requirement
        or not _NAMED_REQUIREMENT.fullmatch(requirement)
        or name.endswith((".whl", ".tar.gz", ".zip", ".tgz"))
    ):
        return (
            f"{requirement!r} is not a requirement by name (a URL or a path?): the worker "
            "installs packages by name from its index only"
        )
    return None


def find_uv() -> str | None:
    """The uv binary: the ``uv`` package's, beside this interpreter, else PATH's."""
    try:
        import uv as uv_package
    except ImportError:
        pass
    else:
        with contextlib.suppress(FileNotFoundError):
            return str(uv_package.find_uv_bin())
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


def uv_environment(settings: WorkerSettings, home: Path) -> dict[str, str]:
    """uv's whole environment: allow-listed names, its cache, no downloads of Pythons."""
    env = {name: os.environ[name] for name in UV_INHERITED if name in os.environ}
    env.update(
        HOME=str(home),
        UV_CACHE_DIR=str(home / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        NO_COLOR="1",
    )
    if settings.env_index_url is not None:
        env["UV_DEFAULT_INDEX"] = settings.env_index_url
    for name, value in settings.job_proxies.items():
        env[name.upper()] = env[name.lower()] = value
    return env


def _version_of(argv: list[str], env: dict[str, str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pythons(uv: str, env: dict[str, str]) -> dict[str, str]:
    """The CPython interpreters uv finds without downloading: version -> path."""
    argv = [uv, "python", "list", "--only-installed", "--output-format", "json", "--no-config"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    pythons: dict[str, str] = {}
    for entry in found if isinstance(found, list) else []:
        if isinstance(entry, dict) and entry.get("implementation") == "cpython":
            version, path = entry.get("version"), entry.get("path")
            if isinstance(version, str) and isinstance(path, str):
                pythons.setdefault(version, path)
    return pythons


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


@dataclass
class Capabilities:
    """What this worker found at start: uv, the Pythons it finds, conda or micromamba (or
    py-rattler, where the operator set the channels)."""

    uv: str | None = None
    uv_version: str | None = None
    pythons: dict[str, str] = field(default_factory=dict)  # version -> interpreter path
    conda: str | None = None  # what builds conda_env, as announced ("micromamba 2.0.5")
    conda_program: str | None = None  # its path; None with conda set: py-rattler

    def support(self) -> EnvironmentSupport:
        versions = sorted(self.pythons, key=_version_key, reverse=True)
        return EnvironmentSupport(
            pythons=versions if self.uv else [], uv=self.uv_version, conda=self.conda
        )

    def interpreter(self, wanted: str) -> tuple[str, str] | None:
        """(version, path) of the newest Python matching ``wanted``'s X.Y, if any."""
        matching = [v for v in self.pythons if minor_version(v) == minor_version(wanted)]
        if not matching:
            return None
        version = max(matching, key=_version_key)
        return version, self.pythons[version]


def detect_capabilities(settings: WorkerSettings) -> Capabilities:
    """Look for uv, its Pythons and conda/micromamba once (a second or so of subprocesses)."""
    home = settings.env_cache_dir or settings.work_dir / "environments"
    env = uv_environment(settings, home / ".home")
    uv = find_uv()
    capabilities = Capabilities()
    if uv is not None:
        version = _version_of([uv, "--version"], env)
        if version is not None:
            capabilities.uv, capabilities.uv_version = uv, version.removeprefix("uv ").split()[0]
            capabilities.pythons = _pythons(uv, env)
    for program in CONDA_PROGRAMS:
        found = shutil.which(program)
        if found is not None:
            version = _version_of([found, "--version"], env) or "unknown version"
            capabilities.conda = f"{program} {version.splitlines()[0] if version else ''}".strip()
            capabilities.conda_program = found
            break
    if capabilities.conda is None and settings.conda_channels and rattler_available():
        capabilities.conda = f"py-rattler {rattler_version()}"
    log.info(
        "environments: uv %s, Python %s, conda %s",
        capabilities.uv_version or "missing",
        ", ".join(capabilities.support().pythons) or "none",
        capabilities.conda or "missing",
    )
    return capabilities


def project_environment(project_dir: Path) -> DeclaredEnvironment:
    """The environment the extracted project's MLproject declares (found as MLflow finds it:
    any capitalisation); nothing declared without an MLproject."""
    mlproject = next(
        (p for p in sorted(project_dir.iterdir()) if p.name.lower() == "mlproject" and p.is_file()),
        None,
    )
    text = None if mlproject is None else mlproject.read_text()

    def read(name: str) -> bytes:
        path = (project_dir / name).resolve()
        if not path.is_relative_to(project_dir.resolve()):
            raise FileNotFoundError(name)
        return path.read_bytes()

    return mlproject_environment(text, read)


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready virtual environment: where it is, its interpreter's home, how it was had."""

    key: str
    path: Path
    python_version: str
    base_prefix: Path  # the interpreter it was made from (read-only in the sandbox too)
    built: bool  # by this call (False: found in the cache)
    seconds: float

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"


@dataclass(frozen=True)
class JobEnvironment:
    """How a job runs in its declared environment: its PATH, what it reads, a cold start."""

    path_env: dict[str, str]
    read_only: tuple[Path, ...]
    cold: bool


class EnvironmentBuilder:
    """Builds and caches declared environments for the jobs of one worker."""

    def __init__(self, settings: WorkerSettings, capabilities: Capabilities | None = None):
        self._settings = settings
        self._capabilities = capabilities
        self.root = settings.env_cache_dir or settings.work_dir / "environments"

    @property
    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            self._capabilities = detect_capabilities(self._settings)
        return self._capabilities

    async def for_job(
        self, project_dir: Path, env_manager: str | None, *, log_line: Report, progress: Report
    ) -> JobEnvironment | None:
        """The job's environment (None: the worker's own); raise EnvironmentBuildError."""
        try:
            declared = await asyncio.to_thread(project_environment, project_dir)
        except (ProblemsError, OSError, UnicodeDecodeError) as exc:
            raise EnvironmentBuildError(f"the declared environment is unusable: {exc}") from exc
        if declared.kind == "none":
            return None
        described = declared.setting or f"{declared.file} (conda_env by default)"
        if env_manager == "local":
            await log_line(
                f"[theodolite] env_manager local: the declared {described} was bypassed; "
                "the job runs in the worker's environment"
            )
            return None
        if declared.kind == "conda":
            return await self._conda_for_job(project_dir, declared, log_line, progress)
        if declared.kind != "python":
            raise EnvironmentBuildError(
                f"{described}: this worker builds python_env and conda_env only (docker and "
                "kubernetes environments are not set up here); submit with env_manager local"
            )
        built = await self.ensure(declared, progress=progress)
        how = "built" if built.built else "reused from the cache"
        await log_line(
            f"[theodolite] python_env {declared.file}: environment {built.key[:12]} {how} in "
            f"{built.seconds:.1f} s; running with {built.bin_dir / 'python'} "
            f"(Python {built.python_version}), a cold start: the warm pool holds the worker's "
            "own environment"
        )
        path = f"{built.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        return JobEnvironment(
            path_env={"PATH": path}, read_only=(built.path, built.base_prefix), cold=True
        )

    async def ensure(self, declared: DeclaredEnvironment, *, progress: Report) -> BuiltEnvironment:
        """The environment of a ``python_env``, from the cache or built now (once per key)."""
        started = time.monotonic()
        capabilities = self.capabilities
        if capabilities.uv is None:
            raise EnvironmentBuildError("python_env: this worker has no uv")
        wanted = declared.python or f"{sys.version_info.major}.{sys.version_info.minor}"
        found = capabilities.interpreter(wanted)
        if found is None:
            have = ", ".join(capabilities.support().pythons) or "none"
            raise EnvironmentBuildError(
                f"python_env {declared.file} asks for Python {wanted}; this worker has {have}"
            )
        version, interpreter = found
        key = environment_key(declared, version)
        final = self.root / key
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        if (ready := _ready(final)) is not None:
            return _built(key, final, version, ready, built=False, started=started)
        async with self._locked(key, progress, "python_env"):
            if (ready := _ready(final)) is not None:  # built while we waited
                return _built(key, final, version, ready, built=False, started=started)
            await self._build(declared, key, version, interpreter, progress)
            ready = _ready(final)
            assert ready is not None
            return _built(key, final, version, ready, built=True, started=started)

    async def _conda_for_job(
        self, project_dir: Path, declared: DeclaredEnvironment, log_line: Report, progress: Report
    ) -> JobEnvironment:
        built = await self.ensure_conda(project_dir, declared, progress=progress)
        how = "built" if built.built else "reused from the cache"
        await log_line(
            f"[theodolite] conda_env {declared.file}: environment {built.key[:12]} {how} in "
            f"{built.seconds:.1f} s with {self.capabilities.conda}; running with {built.bin_dir} "
            "first on PATH, a cold start: the warm pool holds the worker's own environment"
        )
        # Then the worker's own PATH, its interpreter's folder first, as without an environment:
        # a prefix without Python runs ``python`` as conda's activation would leave it.
        rest = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        return JobEnvironment(
            path_env={
                "PATH": f"{built.bin_dir}{os.pathsep}{rest}",
                "CONDA_PREFIX": str(built.path),
            },
            read_only=(built.path,),
            cold=True,
        )

    async def ensure_conda(
        self, project_dir: Path, declared: DeclaredEnvironment, *, progress: Report
    ) -> BuiltEnvironment:
        """The prefix of a ``conda_env``, from the cache or built now (once per key)."""
        started = time.monotonic()
        conda = self.capabilities.conda
        if conda is None:
            raise EnvironmentBuildError(
                "conda_env: this worker has no conda or micromamba (nor py-rattler with "
                "THEODOLITE_WORKER_CONDA_CHANNELS set)"
            )
        assert declared.file is not None and declared.sha256 is not None
        try:
            data = await asyncio.to_thread((project_dir / declared.file).read_bytes)
            wanted = parse_conda_env(data, declared.file)
        except (OSError, CondaFileError) as exc:
            raise EnvironmentBuildError(f"conda_env: {exc}") from exc
        forced = tuple(self._settings.conda_channels)
        refusals = [] if forced else [channel_refusal(c) for c in wanted.channels]
        refusals += [spec_refusal(spec, channels_forced=bool(forced)) for spec in wanted.specs]
        refusals += [requirement_refusal(requirement) for requirement in wanted.pip]
        if why := next((refusal for refusal in refusals if refusal is not None), None):
            raise EnvironmentBuildError(f"conda_env {declared.file}: {why}")
        channels = forced or wanted.channels
        key = conda_key(declared.sha256, conda, channels)
        final = self.root / key
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        if (ready := _ready(final)) is None:
            async with self._locked(key, progress, "conda_env"):
                if (ready := _ready(final)) is None:  # else built while we waited
                    steps = self._conda_steps(final, channels, wanted.specs, wanted.pip)
                    await self._build_in_place(declared.file, final, steps, progress)
                    ready = _ready(final)
                    assert ready is not None
                    return _built_conda(key, final, ready, built=True, started=started)
        return _built_conda(key, final, ready, built=False, started=started)

    def _conda_steps(
        self, prefix: Path, channels: tuple[str, ...], specs: tuple[str, ...], pip: tuple[str, ...]
    ) -> list[tuple[str, list[str], str]]:
        """(what, argv, tool) of each step: create the prefix, then its pip: list with uv."""
        capabilities = self.capabilities
        program = capabilities.conda_program
        tool = Path(program).name if program else "py-rattler"
        create = create_command(
            program, prefix, channels, specs, cache_dir=self.root / ".home" / "conda-pkgs"
        )
        from_where = f" from {', '.join(channels)}" if channels else ""
        steps = [(f"creating the environment: {' '.join(specs)}{from_where}", create, tool)]
        if pip:
            if capabilities.uv is None:
                raise EnvironmentBuildError("conda_env: its pip: list needs uv, which is missing")
            install = [capabilities.uv, "pip", "install", "--no-config", "--no-build"]
            install += ["--python", str(prefix / "bin" / "python"), *pip]
            steps.append((f"installing pip dependencies: {' '.join(pip)}", install, "uv"))
        return steps

    async def _build_in_place(
        self, file: str, prefix: Path, steps: list[tuple[str, list[str], str]], progress: Report
    ) -> None:
        """Run the steps building ``prefix``, then mark it ready; remove it unless all ran."""
        env = uv_environment(self._settings, self.root / ".home")
        await asyncio.to_thread(shutil.rmtree, prefix, True)  # a build that died half-way
        done = False
        try:
            for index, (what, argv, tool) in enumerate(steps, start=1):
                await progress(f"conda_env {file}: {what} ({index}/{len(steps)})")
                await self._run(argv, env, f"conda_env: {what}", tool)
            python = prefix / "bin" / "python"
            metadata = {
                "file": file,
                "conda": self.capabilities.conda,
                "python": _version_of([str(python), "--version"], env) if python.exists() else "",
                "built_at": time.time(),
            }
            (prefix / READY_FILE).write_text(json.dumps(metadata))
            os.chmod(prefix, 0o755)
            done = True
        finally:
            if not done:
                await asyncio.to_thread(shutil.rmtree, prefix, True)

    @contextlib.asynccontextmanager
    async def _locked(self, key: str, progress: Report, kind: str) -> AsyncIterator[None]:
        """Hold the key's file lock (polled, so a cancelled job stops waiting)."""
        fd = os.open(self.root / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            waiting_said = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting_said:
                        await progress(f"{kind}: waiting for another build of {key[:12]}")
                        waiting_said = True
                    await asyncio.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # releases the lock

    async def _build(
        self,
        declared: DeclaredEnvironment,
        key: str,
        version: str,
        interpreter: str,
        progress: Report,
    ) -> None:
        for requirement in (*declared.build_dependencies, *declared.dependencies):
            if (why := requirement_refusal(requirement)) is not None:
                raise EnvironmentBuildError(f"python_env {declared.file}: {why}")
        capabilities = self.capabilities
        assert capabilities.uv is not None
        uv = capabilities.uv
        temporary = self.root / f".build-{key[:16]}-{uuid.uuid4().hex[:8]}"
        env = uv_environment(self._settings, self.root / ".home")
        python = str(temporary / "bin" / "python")
        steps = [
            (
                f"creating a virtual environment with Python {version}",
                [
                    uv,
                    "venv",
                    "--no-config",
                    "--relocatable",
                    "--python",
                    interpreter,
                    str(temporary),
                ],
            )
        ]
        for name, requirements in (
            ("build_dependencies", declared.build_dependencies),
            ("dependencies", declared.dependencies),
        ):
            if requirements:
                steps.append(
                    (
                        f"installing {name}: {' '.join(requirements)}",
                        # Wheels only: building a source distribution runs its code here,
                        # outside any job's sandbox.
                        [
                            uv,
                            "pip",
                            "install",
                            "--no-config",
                            "--no-build",
                            "--python",
                            python,
                            *requirements,
                        ],
                    )
                )
        try:
            for index, (what, argv) in enumerate(steps, start=1):
                await progress(f"python_env {declared.file}: {what} ({index}/{len(steps)})")
                await self._run(argv, env, f"python_env: {what}")
            metadata = {
                "file": declared.file,
                "sha256": declared.sha256,
                "python": version,
                "uv": capabilities.uv_version,
                "built_at": time.time(),
            }
            (temporary / READY_FILE).write_text(json.dumps(metadata))
            os.chmod(temporary, 0o755)
            os.rename(temporary, self.root / key)  # atomic: a job sees all of it or none
        finally:
            await asyncio.to_thread(shutil.rmtree, temporary, True)

    async def _run(self, argv: list[str], env: dict[str, str], what: str, tool: str = "uv") -> None:
        """Run one build step; raise EnvironmentBuildError with the tail of its output."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=self.root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(
                process.communicate(), timeout=self._settings.env_build_timeout_s
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise EnvironmentBuildError(
                f"{what} took over {self._settings.env_build_timeout_s:.0f} s"
            ) from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            lines = output.decode(errors="replace").strip().splitlines()[-TAIL_LINES:]
            raise EnvironmentBuildError(
                f"{what} failed ({tool} exited with {process.returncode}): " + "\n".join(lines)
            )


def _ready(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads((path / READY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _base_prefix(path: Path) -> Path:
    """The folder of the interpreter a virtual environment was made from (``home``'s parent)."""
    for line in (path / "pyvenv.cfg").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "home":
            return Path(value.strip()).parent
    raise EnvironmentBuildError(f"{path}: pyvenv.cfg names no home")


def _built(
    key: str, path: Path, version: str, ready: dict[str, Any], *, built: bool, started: float
) -> BuiltEnvironment:
    return BuiltEnvironment(
        key=key,
        path=path,
        python_version=str(ready.get("python", version)),
        base_prefix=_base_prefix(path),
        built=built,
        seconds=time.monotonic() - started,
    )


def _built_conda(
    key: str, path: Path, ready: dict[str, Any], *, built: bool, started: float
) -> BuiltEnvironment:
    python = str(ready.get("python") or "").removeprefix("Python ")
    return BuiltEnvironment(
        key=key,
        path=path,
        python_version=python,
        base_prefix=path,  # a conda prefix holds its own interpreter, if any
        built=built,
        seconds=time.monotonic() - started,
    )
