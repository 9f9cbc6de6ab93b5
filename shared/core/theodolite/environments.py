"""The environment an MLproject declares (``python_env``, ``conda_env``, ``docker_env``,
``kubernetes_env``), read as MLflow Projects reads it, and what a worker can build.

MLflow takes at most one environment key; with none, a ``conda.yaml`` at the project's root is
the conda environment, and otherwise the project runs where it is started (kind ``none``).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from theodolite.problems import Problem, ProblemsError

EnvironmentKind = Literal["python", "conda", "docker", "kubernetes", "none"]
# ``mlflow run --env-manager``'s choices; ``virtualenv`` is built with uv here too.
EnvManager = Literal["local", "uv", "virtualenv", "conda"]
ENV_MANAGERS: tuple[str, ...] = ("local", "uv", "virtualenv", "conda")
DEFAULT_CONDA_FILE = "conda.yaml"
ENVIRONMENT_KEYS: dict[str, EnvironmentKind] = {
    "python_env": "python",
    "conda_env": "conda",
    "docker_env": "docker",
    "kubernetes_env": "kubernetes",
}
PYTHON_ENV_KEYS = frozenset({"python", "build_dependencies", "dependencies"})

Files = Mapping[str, bytes] | Callable[[str], bytes]


class DeclaredEnvironment(BaseModel):
    """One project's environment: its kind, the archive file declaring it and that file's
    sha256, and what a ``python_env`` file says (a docker one: its image)."""

    kind: EnvironmentKind = "none"
    setting: str | None = None  # the MLproject key that declared it (None: nothing, a default)
    file: str | None = None
    sha256: str | None = None
    python: str | None = None
    build_dependencies: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    image: str | None = None

    @property
    def python_minor(self) -> str | None:
        """The requested Python as ``X.Y`` (``3.9.18`` asks for 3.9), None when unsaid."""
        return None if self.python is None else minor_version(self.python)


class EnvironmentSupport(BaseModel):
    """What a worker can build, announced in its heartbeat."""

    pythons: list[str] = Field(default_factory=list)  # full versions found, newest first
    uv: str | None = None  # uv's version; None: no uv, no python_env
    conda: str | None = None  # the conda or micromamba found; None: no conda_env
    docker: bool = False
    kubernetes: bool = False

    def kinds(self) -> list[str]:
        """The environment kinds this worker builds (``none`` always runs)."""
        kinds = ["none"]
        kinds += ["python"] if self.uv is not None and self.pythons else []
        kinds += ["conda"] if self.conda is not None else []
        kinds += ["docker"] if self.docker else []
        kinds += ["kubernetes"] if self.kubernetes else []
        return kinds

    def has_python(self, version: str) -> bool:
        """Whether a Python of ``version``'s ``X.Y`` was found."""
        wanted = minor_version(version)
        return any(minor_version(found) == wanted for found in self.pythons)


def common_support(announced: list[EnvironmentSupport]) -> EnvironmentSupport | None:
    """What every one of a queue's workers can build (a job may reach any); None: none said."""
    if not announced:
        return None
    first, *others = announced
    pythons = [v for v in first.pythons if all(o.has_python(v) for o in others)]
    return EnvironmentSupport(
        pythons=pythons,
        uv=first.uv if all(o.uv is not None for o in others) else None,
        conda=first.conda if all(o.conda is not None for o in others) else None,
        docker=all(o.docker for o in announced),
        kubernetes=all(o.kubernetes for o in announced),
    )


def minor_version(version: str) -> str:
    """``3.9.18`` -> ``3.9``; ``3`` stays ``3``."""
    return ".".join(version.strip().split(".")[:2])


def _problem(field: str, message: str) -> Problem:
    return Problem(field=field, message=message)


def _reader(files: Files) -> Callable[[str], bytes | None]:
    """A lookup of archive members by their normalised path: None when missing."""

    def read(name: str) -> bytes | None:
        path = posixpath.normpath(name)
        if isinstance(files, Mapping):
            return files.get(path)
        try:
            return files(path)
        except (KeyError, FileNotFoundError):
            return None

    return read


def declared_environment(document: Mapping[str, Any], files: Files) -> DeclaredEnvironment:
    """The environment an MLproject document (parsed YAML) declares, its file read from the
    archive's ``files`` (a mapping or a reader raising KeyError); raise ProblemsError naming
    every problem."""
    present = [key for key in ENVIRONMENT_KEYS if document.get(key) is not None]
    if len(present) > 1:
        raise ProblemsError(
            "invalid MLproject",
            [_problem("MLproject", f"declares {' and '.join(present)}: at most one environment")],
        )
    read = _reader(files)
    if not present:
        data = read(DEFAULT_CONDA_FILE)
        if data is None:
            return DeclaredEnvironment()
        return DeclaredEnvironment(
            kind="conda", file=DEFAULT_CONDA_FILE, sha256=hashlib.sha256(data).hexdigest()
        )
    key = present[0]
    kind, value, field = ENVIRONMENT_KEYS[key], document[key], f"MLproject.{key}"
    if kind in ("docker", "kubernetes"):
        if not isinstance(value, Mapping):
            raise ProblemsError("invalid MLproject", [_problem(field, "must be a mapping")])
        image = value.get("image")
        if kind == "docker" and (not isinstance(image, str) or not image.strip()):
            raise ProblemsError(
                "invalid MLproject", [_problem(f"{field}.image", "names the image to run in")]
            )
        return DeclaredEnvironment(
            kind=kind, setting=key, image=image if isinstance(image, str) else None
        )
    if not isinstance(value, str) or not value.strip():
        raise ProblemsError(
            "invalid MLproject", [_problem(field, "names a file in the project (a YAML path)")]
        )
    path = posixpath.normpath(value.strip())
    if path.startswith("../") or path == ".." or posixpath.isabs(path):
        raise ProblemsError(
            "invalid MLproject", [_problem(field, f"{value!r} is outside the project")]
        )
    data = read(path)
    if data is None:
        raise ProblemsError(
            "invalid MLproject", [_problem(field, f"names {value!r}, which the archive lacks")]
        )
    declared = DeclaredEnvironment(
        kind=kind, setting=key, file=path, sha256=hashlib.sha256(data).hexdigest()
    )
    if kind == "conda":
        return declared
    return declared.model_copy(update=parse_python_env(data, path).model_dump(exclude_unset=True))


def mlproject_environment(text: str | None, files: Files) -> DeclaredEnvironment:
    """The environment an MLproject's text declares (None: a project without one declares
    nothing, or a root conda.yaml); raise ProblemsError naming every problem."""
    try:
        document = {} if text is None else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = _problem("MLproject", f"not YAML: {exc}")
        raise ProblemsError("invalid MLproject", [problem]) from exc
    return declared_environment(document if isinstance(document, dict) else {}, files)


class PythonEnv(BaseModel):
    """A ``python_env`` file (MLflow's ``_PythonEnv``)."""

    python: str | None = None
    build_dependencies: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)


def parse_python_env(data: bytes, name: str = "python_env.yaml") -> PythonEnv:
    """A ``python_env`` file's content; raise ProblemsError naming every problem."""
    try:
        document = yaml.safe_load(data.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProblemsError("invalid python_env", [_problem(name, f"not YAML: {exc}")]) from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ProblemsError("invalid python_env", [_problem(name, "must be a YAML mapping")])
    problems = [
        _problem(f"{name}.{key}", f"unknown key; use {sorted(PYTHON_ENV_KEYS)}")
        for key in document
        if key not in PYTHON_ENV_KEYS
    ]
    python = document.get("python")
    if isinstance(python, float | int) and not isinstance(python, bool):
        # YAML reads 3.10 as the number 3.1: the user meant text.
        problems.append(_problem(f"{name}.python", f"write the version quoted: '{python}'"))
    elif python is not None and not (isinstance(python, str) and python.strip()):
        problems.append(_problem(f"{name}.python", "must be a version such as '3.11'"))
    lists: dict[str, list[str]] = {}
    for key in ("build_dependencies", "dependencies"):
        raw = document.get(key)
        if raw is None:
            continue
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            problems.append(_problem(f"{name}.{key}", "must be a list of requirement strings"))
            continue
        lists[key] = [item.strip() for item in raw if item.strip()]
    if problems:
        raise ProblemsError("invalid python_env", problems)
    values: dict[str, Any] = {**lists}
    if isinstance(python, str):
        values["python"] = python.strip()
    return PythonEnv(**values)


def environment_problems(
    declared: DeclaredEnvironment,
    env_manager: str | None,
    support: EnvironmentSupport | None,
    *,
    queue: str,
) -> list[Problem]:
    """Why a queue whose workers announce ``support`` cannot run ``declared`` with this
    ``env_manager`` (None: build what is declared); ``support`` None: no live worker said."""
    if env_manager == "local":
        return []
    offers = _offers(support)
    field = "env_manager" if env_manager is not None else f"MLproject.{declared.setting}"
    if env_manager in ("uv", "virtualenv") and declared.kind not in ("python", "none"):
        return [
            _problem(
                "env_manager",
                f"{env_manager} builds python_env, but the project declares "
                f"{declared.setting or declared.kind}; use env_manager conda or local",
            )
        ]
    if env_manager == "conda" and declared.kind not in ("conda", "none"):
        return [
            _problem(
                "env_manager",
                f"conda builds conda_env, but the project declares {declared.setting}; "
                "use env_manager uv or local",
            )
        ]
    if declared.kind == "none":
        return []
    if support is None:
        return []  # no live worker announced anything: the queue's own checks speak for it
    setting = declared.setting or f"{declared.file} (conda_env by default)"
    if declared.kind in ("docker", "kubernetes") and declared.kind not in support.kinds():
        return [
            _problem(
                field,
                f"{setting}: queue {queue!r} is not set up for {declared.kind} environments "
                f"(it offers {offers}); submit with env_manager local to run in the "
                "worker's environment",
            )
        ]
    if declared.kind == "conda" and support.conda is None:
        return [
            _problem(
                field,
                f"{setting}: queue {queue!r} has no conda or micromamba (it offers {offers}); "
                "submit with env_manager local to run in the worker's environment",
            )
        ]
    if declared.kind == "python":
        if support.uv is None:
            return [_problem(field, f"{setting}: queue {queue!r} has no uv (it offers {offers})")]
        wanted = declared.python
        if wanted is not None and not support.has_python(wanted):
            found = ", ".join(support.pythons) or "none"
            return [
                _problem(
                    field,
                    f"{setting} ({declared.file}) asks for Python {wanted}; queue {queue!r} "
                    f"has only {found}; submit with env_manager local to run in the worker's "
                    "environment",
                )
            ]
    return []


def _offers(support: EnvironmentSupport | None) -> str:
    if support is None:
        return "nothing announced"
    parts = []
    if support.uv is not None and support.pythons:
        parts.append(f"python_env (uv {support.uv}; Python {', '.join(support.pythons)})")
    if support.conda is not None:
        parts.append(f"conda_env ({support.conda})")
    if support.docker:
        parts.append("docker_env")
    if support.kubernetes:
        parts.append("kubernetes_env")
    return "; ".join(parts) or "only the worker's own environment (env_manager local)"


def environment_key(declared: DeclaredEnvironment, python_version: str) -> str:
    """The cache key of a built environment: its file's hash and the interpreter it got."""
    if declared.sha256 is None:
        raise ValueError("only an environment declared in a file has a cache key")
    return hashlib.sha256(f"{declared.sha256}\0{python_version}".encode()).hexdigest()
