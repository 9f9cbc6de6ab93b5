"""What each distribution pulls in: the api no ML frameworks (issue 2); the SDK and the client no
database, broker or S3 library (issue 10); every import declared where it is made (issue 15)."""

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("data", "models", "attacks", "defences", "metrics", "reports")


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
    for plugin in PLUGINS:
        closure = _closure(f"theodolite-plugin-{plugin}")
        project = {c for c in closure if c.startswith("theodolite-")}
        assert project == {f"theodolite-plugin-{plugin}", "theodolite-sdk"}, project


# Every import is declared by the distribution whose code makes it (issue 15): an image installs
# one distribution with its lock, and a module that imports what only the dev venv brings (as
# jsonschema once came only through prefect) fails there at start.
SOURCES = {
    "shared/sdk": "theodolite",
    "shared/client": "theodolite",
    "shared/core": "theodolite",
    "shared/devtools": "theodolite",
    "services/api": "theodolite_api",
    "services/worker": "theodolite_worker",
    "services/plugin-registry": "theodolite_registry",
}

# Imported directly but guaranteed by a declared distribution that exists to bring it (its own
# core or its transport): the key comes with the value, a requirement the last test checks.
COMES_WITH = {
    "pydantic-core": "pydantic",
    "starlette": "fastapi",
    "anyio": "httpx",
    "yarl": "aiohttp",
}

# The `theodolite` namespace, by the distribution that holds each top-level name.
NAMESPACE_OWNERS = {
    "sdk": "theodolite-sdk",
    "client": "theodolite-client",
    "cli": "theodolite-client",
    "__main__": "theodolite-client",
    "devstack": "theodolite-devtools",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalise(re.split(r"[ ;<>=!~\[(@]", requirement.strip(), maxsplit=1)[0])


def _project(folder: str) -> dict[str, object]:
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    assert isinstance(project, dict)
    return project


def _declared(folder: str) -> set[str]:
    project = _project(folder)
    requirements = list(project.get("dependencies", []))  # type: ignore[call-overload]
    for extra in project.get("optional-dependencies", {}).values():  # type: ignore[attr-defined]
        requirements += extra
    names = {_requirement_name(r) for r in requirements} | {_normalise(str(project["name"]))}
    return names | {provided for provided, by in COMES_WITH.items() if by in names}


@functools.cache
def _installed() -> dict[str, list[str]]:
    return dict(packages_distributions())


def _distributions_of(module: str, owners: dict[str, str]) -> set[str]:
    top, _, rest = module.partition(".")
    if top == "theodolite":
        return {NAMESPACE_OWNERS.get(rest.split(".")[0], "theodolite-core")}
    if top in owners:
        return {owners[top]}
    return {_normalise(d) for d in _installed().get(top, [f"(not installed) {top}"])}


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}


def test_every_import_is_declared_by_the_distribution_that_makes_it() -> None:
    owners = {
        package: _normalise(str(_project(folder)["name"]))
        for folder, package in SOURCES.items()
        if package != "theodolite"
    }
    undeclared: dict[str, set[str]] = {}
    for folder, package in SOURCES.items():
        declared = _declared(folder)
        for path in sorted((ROOT / folder / package).rglob("*.py")):
            for module in _imports(path):
                if not _distributions_of(module, owners) & declared:
                    where = f"{folder} ({path.relative_to(ROOT)})"
                    undeclared.setdefault(where, set()).add(module)
    assert not undeclared, undeclared


def test_what_comes_with_a_declared_distribution_is_required_by_it() -> None:
    for provided, provider in COMES_WITH.items():
        assert provided in {_requirement_name(r) for r in requires(provider) or []}, (
            provided,
            provider,
        )
