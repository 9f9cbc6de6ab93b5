"""compose.yaml and the images it builds, checked without a Docker engine.

The file is read the way Compose reads it (YAML, then variable interpolation with every variable
unset, so each development default applies); the api and worker environments are fed to the real
settings classes; the Dockerfiles are read for what they copy from the build context.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
API_DOCKERFILE = "deploy/docker/api.Dockerfile"
WORKER_DOCKERFILE = "deploy/docker/worker.Dockerfile"
MLFLOW_DOCKERFILE = "deploy/docker/mlflow.Dockerfile"
SETTINGS_BY_DOCKERFILE: dict[str, type[BaseSettings]] = {
    API_DOCKERFILE: ApiSettings,
    WORKER_DOCKERFILE: WorkerSettings,
}

_VARIABLE = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: Any) -> Any:
    """Compose's variable interpolation with no variable set: every default applies."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op")
        if op is not None and op.endswith("?"):
            raise AssertionError(f"{match.group(0)} makes a variable mandatory: give it a default")
        return match.group("arg") if op is not None and op.endswith("-") else ""

    return _VARIABLE.sub(replace, value)


def load_compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
THEODOLITE_SERVICES = sorted(
    name
    for name, service in SERVICES.items()
    if isinstance(service.get("build"), dict)
    and service["build"].get("dockerfile") in SETTINGS_BY_DOCKERFILE
)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """The names a service depends on, with their conditions."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def settings_variables(
    model: type[BaseSettings], path: tuple[str, ...] = ()
) -> dict[str, tuple[tuple[str, ...], FieldInfo]]:
    """Every environment variable a settings class reads -> (attribute path, field)."""
    prefix = model.model_config.get("env_prefix", "")
    found: dict[str, tuple[tuple[str, ...], FieldInfo]] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            found.update(settings_variables(annotation, (*path, name)))
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            names = [alias]
        else:
            names = [f"{prefix}{name}"]
        for env_name in names:
            found[env_name.upper()] = ((*path, name), field)
    return found


def attribute(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return instructions


def copy_sources(arguments: str) -> list[str] | None:
    """Build-context sources of one COPY/ADD; None when it copies from another stage."""
    words = shlex.split(arguments)
    flags = [word for word in words if word.startswith("--")]
    if any(flag.startswith("--from=") for flag in flags):
        return None
    rest = arguments
    for flag in flags:
        rest = rest.replace(flag, "", 1)
    rest = rest.strip()
    paths = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    assert len(paths) >= 2, f"COPY {arguments!r} needs a source and a destination"
    return paths[:-1]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> str | None:
    """The .dockerignore pattern that excludes ``path`` (or a folder above it), if any."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern):
                return pattern
            if pattern.startswith("**/"):
                pieces = candidate.split("/")
                tails = ("/".join(pieces[index:]) for index in range(len(pieces)))
                if any(fnmatch.fnmatchcase(tail, pattern[3:]) for tail in tails):
                    return pattern
    return None


def built_dockerfile(service: dict[str, Any]) -> Path:
    build = service["build"]
    return ROOT / build.get("context", ".") / build["dockerfile"]


# --- the compose file itself -------------------------------------------------------------------


def test_every_build_dockerfile_exists_and_builds_from_the_repository_root() -> None:
    built = {name: service for name, service in SERVICES.items() if "build" in service}
    assert {"api", "worker-cpu", "worker-gpu", "mlflow"} <= set(built)
    for name, service in built.items():
        assert (ROOT / service["build"].get("context", ".")).resolve() == ROOT.resolve(), name
        assert built_dockerfile(service).is_file(), f"{name}: {service['build']['dockerfile']}"


def test_depends_on_names_existing_services_with_a_condition_they_can_meet() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
            assert not SERVICES[dependency].get("profiles"), (
                f"{name} depends on {dependency}, which only starts with a profile"
            )
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert SERVICES[dependency].get("restart", "no") == "no", dependency


def test_long_running_infrastructure_has_healthchecks() -> None:
    for name in ("minio", "rabbitmq", "postgres", "mlflow", "api"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_api_healthcheck_asks_readyz_on_the_port_it_serves() -> None:
    api = SERVICES["api"]
    check = " ".join(api["healthcheck"]["test"])
    port = environment(api)["THEODOLITE_API_PORT"]
    assert f":{port}/readyz" in check
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"])


@pytest.mark.parametrize("name", THEODOLITE_SERVICES)
def test_theodolite_variables_are_real_settings_fields(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    settings_class = SETTINGS_BY_DOCKERFILE[service["build"]["dockerfile"]]
    known = settings_variables(settings_class)
    env = {
        key: value for key, value in environment(service).items() if key.startswith("THEODOLITE_")
    }
    assert env, f"{name} sets no THEODOLITE_ variables"
    unknown = sorted(set(env) - set(known))
    assert not unknown, f"{name} sets variables no {settings_class.__name__} field reads: {unknown}"

    for key in list(os.environ):
        if key.startswith("THEODOLITE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_class()

    for key, raw in env.items():
        path, field = known[key]
        expected = TypeAdapter(field.annotation).validate_strings(raw)
        assert attribute(settings, path) == expected, f"{name}: {key}={raw!r} did not land"

    assert settings.storage.endpoint == "minio:9000"
    assert settings.mlflow.tracking_uri == "http://mlflow:5000"
    assert urlsplit(settings.broker.url).hostname == "rabbitmq"
    if isinstance(settings, ApiSettings):
        assert settings.host == "0.0.0.0"
        db = urlsplit(settings.db.url)
        assert (db.scheme, db.hostname, db.path) == (
            "postgresql+asyncpg",
            "postgres",
            "/theodolite",
        )
    else:
        assert isinstance(settings, WorkerSettings)
        assert settings.queue == ("gpu" if name == "worker-gpu" else "cpu")
        assert settings.gpus == ("0" if name == "worker-gpu" else None)


def test_services_agree_on_credentials() -> None:
    api = environment(SERVICES["api"])
    minio = environment(SERVICES["minio"])
    rabbitmq = environment(SERVICES["rabbitmq"])
    postgres = environment(SERVICES["postgres"])
    mlflow = environment(SERVICES["mlflow"])

    assert (api["THEODOLITE_S3_ACCESS_KEY"], api["THEODOLITE_S3_SECRET_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert (mlflow["AWS_ACCESS_KEY_ID"], mlflow["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    broker = urlsplit(api["THEODOLITE_BROKER_URL"])
    assert (broker.username, broker.password) == (
        rabbitmq["RABBITMQ_DEFAULT_USER"],
        rabbitmq["RABBITMQ_DEFAULT_PASS"],
    )
    database = urlsplit(api["THEODOLITE_DB_URL"])
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    for worker in ("worker-cpu", "worker-gpu"):
        worker_env = environment(SERVICES[worker])
        for key in ("THEODOLITE_BROKER_URL", "THEODOLITE_S3_SECRET_KEY"):
            assert worker_env[key] == api[key], f"{worker}: {key}"


def test_buckets_and_databases_exist_before_they_are_used() -> None:
    bucket_script = "\n".join(SERVICES["createbuckets"]["command"])
    created = set(re.findall(r"mc mb --ignore-existing \w+/([\w.-]+)", bucket_script))
    command = SERVICES["mlflow"]["command"]
    artifacts = command[command.index("--artifacts-destination") + 1]
    backend = command[command.index("--backend-store-uri") + 1]

    assert environment(SERVICES["api"])["THEODOLITE_S3_ENTRYPOINT_BUCKET"] in created
    assert urlsplit(artifacts).netloc in created
    # psycopg2 driver: a plain postgresql:// URI crashes MLflow at start.
    assert urlsplit(backend).scheme == "postgresql+psycopg2"

    init_sql = (ROOT / "deploy/postgres/init.sql").read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init_sql, flags=re.IGNORECASE))
    assert {"theodolite", "mlflow"} <= databases
    assert urlsplit(backend).path.lstrip("/") in databases
    mounts = [str(volume) for volume in SERVICES["postgres"]["volumes"]]
    assert any(
        mount.startswith("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/")
        for mount in mounts
    )


def test_mlflow_server_runs_like_the_local_stack() -> None:
    command = SERVICES["mlflow"]["command"]
    assert command[command.index("--workers") + 1] == "1"
    env = environment(SERVICES["mlflow"])
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_telemetry_is_off_in_every_service_we_build() -> None:
    for name, service in SERVICES.items():
        if "build" not in service:
            continue
        env = environment(service)
        assert env.get("DO_NOT_TRACK") == "1", name
        assert env.get("MLFLOW_DISABLE_TELEMETRY") == "true", name


def test_gpu_worker_reserves_an_nvidia_gpu_behind_a_profile() -> None:
    gpu_worker = SERVICES["worker-gpu"]
    assert gpu_worker.get("profiles") == ["gpu"]
    devices = gpu_worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia"
        and "gpu" in device.get("capabilities", [])
        and (device.get("count") == 1 or len(device.get("device_ids", [])) == 1)
        for device in devices
    )
    assert built_dockerfile(gpu_worker) == built_dockerfile(SERVICES["worker-cpu"])
    # Everything else starts with a plain `docker compose up`, on machines without a GPU.
    for name, service in SERVICES.items():
        if name != "worker-gpu":
            assert not service.get("profiles"), name
            assert "deploy" not in service, name


# --- the images -----------------------------------------------------------------------------

KNOWN_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, WORKER_DOCKERFILE, MLFLOW_DOCKERFILE])
def test_dockerfiles_are_well_formed(dockerfile: str) -> None:
    instructions = dockerfile_instructions(ROOT / dockerfile)
    keywords = [keyword for keyword, _ in instructions]
    assert set(keywords) <= KNOWN_INSTRUCTIONS, set(keywords) - KNOWN_INSTRUCTIONS
    assert set(keywords[: keywords.index("FROM")]) <= {"ARG"}, "only ARG may precede FROM"
    assert keywords[-1] in {"CMD", "ENTRYPOINT"}
    for keyword, arguments in instructions:
        if keyword in {"CMD", "ENTRYPOINT"} and arguments.startswith("["):
            assert all(isinstance(word, str) for word in json.loads(arguments))
    assert "python:3.11-slim" in (ROOT / dockerfile).read_text()


@pytest.mark.parametrize(
    ("dockerfile", "service_dir"),
    [(API_DOCKERFILE, "services/api"), (WORKER_DOCKERFILE, "services/worker")],
)
def test_image_copies_only_what_exists_and_is_not_ignored(
    dockerfile: str, service_dir: str
) -> None:
    patterns = dockerignore_patterns()
    sources: list[str] = []
    for keyword, arguments in dockerfile_instructions(ROOT / dockerfile):
        if keyword in {"COPY", "ADD"} and (found := copy_sources(arguments)) is not None:
            sources += found
    assert {"shared", service_dir} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile}: COPY source {source} does not exist"
        assert ignored(source, patterns) is None, (
            f"{dockerfile}: COPY source {source} is excluded by .dockerignore "
            f"({ignored(source, patterns)})"
        )
    assert (ROOT / service_dir / "pyproject.toml").is_file()


def _run_text(dockerfile: str) -> str:
    return " ".join(
        arguments for keyword, arguments in dockerfile_instructions(ROOT / dockerfile)
        if keyword == "RUN"
    )  # fmt: skip


# The project's own distributions are not on any index: an image installs each one its service
# needs from its folder, or pip fails to resolve it.
LOCAL_DISTRIBUTIONS = {
    "theodolite-sdk": "./shared/sdk",
    "theodolite-client": "./shared/client",
    "theodolite-core": "./shared/core",
}


def _project_closure(distribution: str) -> set[str]:
    from tests.unit.test_dependencies import _closure

    return {name for name in _closure(distribution) if name in LOCAL_DISTRIBUTIONS}


@pytest.mark.parametrize(
    ("dockerfile", "distribution", "service_dir"),
    [
        (API_DOCKERFILE, "theodolite-api", "./services/api"),
        (WORKER_DOCKERFILE, "theodolite-worker", '"./services/worker[ml]"'),
    ],
)
def test_images_install_every_shared_distribution_their_service_needs(
    dockerfile: str, distribution: str, service_dir: str
) -> None:
    runs = _run_text(dockerfile)
    assert service_dir in runs
    needed = _project_closure(distribution)
    assert "theodolite-core" in needed and "theodolite-sdk" in needed
    for name in needed:
        folder = LOCAL_DISTRIBUTIONS[name]
        assert folder in runs, (
            f"{dockerfile} installs {distribution}, which needs {name} ({folder})"
        )
    assert "theodolite-devtools" not in runs and "./shared/devtools" not in runs


def test_images_install_core_and_service() -> None:
    runs = {
        dockerfile: _run_text(dockerfile)
        for dockerfile in (API_DOCKERFILE, WORKER_DOCKERFILE, MLFLOW_DOCKERFILE)
    }
    assert "./shared/client" not in runs[API_DOCKERFILE]  # the gateway has no command line
    assert "torch" not in runs[WORKER_DOCKERFILE]
    mlflow_text = (ROOT / MLFLOW_DOCKERFILE).read_text()
    assert "MLFLOW_VERSION=3.17.2" in mlflow_text
    assert "psycopg2-binary" in runs[MLFLOW_DOCKERFILE] and "boto3" in runs[MLFLOW_DOCKERFILE]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = dockerignore_patterns()
    for local_state in (".venv", ".stack", ".git", "shared/core/theodolite/__pycache__"):
        assert ignored(local_state, patterns), local_state
