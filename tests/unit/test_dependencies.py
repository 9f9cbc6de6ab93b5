"""What each distribution pulls in: the api no ML frameworks (issue 2); the SDK and the client no
database, broker or S3 library (issue 10)."""

import re
from importlib.metadata import PackageNotFoundError, requires


def _closure(distribution: str) -> set[str]:
    seen: set[str] = set()
    pending = [distribution]
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requirements = requires(name) or []
        except PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            pending.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return seen


def test_api_install_pulls_no_ml_frameworks() -> None:
    closure = _closure("theodolite-api")
    assert "fastapi" in closure and "theodolite-core" in closure
    assert not closure & {"torch", "adversarial-robustness-toolbox", "mlflow", "scikit-learn"}


def test_worker_ml_extra_brings_what_jobs_import() -> None:
    ml = [r for r in requires("theodolite-worker") or [] if 'extra == "ml"' in r]
    names = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0] for r in ml}
    assert {"adversarial-robustness-toolbox", "scikit-learn", "mlflow"} <= names


SERVER_LIBRARIES = {"asyncpg", "sqlalchemy", "sqlmodel", "aio-pika", "minio", "alembic"}


def test_sdk_and_client_pull_no_server_libraries() -> None:
    for distribution in ("theodolite-sdk", "theodolite-client"):
        closure = _closure(distribution)
        assert "pydantic" in closure, distribution
        assert not closure & SERVER_LIBRARIES, (distribution, closure & SERVER_LIBRARIES)
        assert not {c for c in closure if c.startswith("theodolite-")} - {distribution}


def test_plugins_depend_on_the_sdk_only() -> None:
    for plugin in ("data", "models", "attacks", "defences", "metrics", "reports"):
        closure = _closure(f"theodolite-plugin-{plugin}")
        project = {c for c in closure if c.startswith("theodolite-")}
        assert project == {f"theodolite-plugin-{plugin}", "theodolite-sdk"}, project
