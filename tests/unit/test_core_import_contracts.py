"""The import-linter contracts in pyproject.toml (run by ``make lint``): they name every module
they must, and each one can fail. A contract that cannot fail guards nothing, so each is broken
once here, by a module with a forbidden import added to a copy of the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}

# Source roots, each holding one importable package (or a portion of the `theodolite` namespace).
SOURCE_ROOTS = sorted(
    path.parent.relative_to(ROOT)
    for pattern in ("shared/*/theodolite", "services/*/theodolite_*", "plugins/*/theodolite_*")
    for path in ROOT.glob(pattern)
    if path.is_dir() and not path.name.endswith(".egg-info")
)
SERVICES = {path.name for path in ROOT.glob("services/*/theodolite_*") if path.suffix == ""}
PLUGINS = {path.name for path in ROOT.glob("plugins/*/theodolite_*") if path.suffix == ""}


def _portion(distribution: str) -> set[str]:
    """The top-level modules of the namespace that one shared distribution holds."""
    folder = ROOT / "shared" / distribution / "theodolite"
    return {
        f"theodolite.{path.stem}"
        for path in folder.iterdir()
        if (path.suffix == ".py" or path.is_dir()) and path.name != "__pycache__"
    }


def _modules(contract: str, field: str) -> set[str]:
    return set(CONTRACTS[contract][field])


def test_every_package_is_analysed() -> None:
    assert set(CONFIG["root_packages"]) == {"theodolite"} | SERVICES | PLUGINS
    assert _modules("services-independent", "modules") == SERVICES
    assert _modules("plugins-sdk-only", "source_modules") == PLUGINS


def test_the_lists_name_every_module_of_the_namespace() -> None:
    core, client, devtools = _portion("core"), _portion("client"), _portion("devtools")
    assert _portion("sdk") == {"theodolite.sdk"}
    assert _modules("plugins-sdk-only", "forbidden_modules") == core | client | devtools | SERVICES
    assert _modules("client-no-server", "source_modules") == client
    assert _modules("client-no-server", "forbidden_modules") == core | devtools | SERVICES
    assert _modules("core-no-client", "source_modules") == core
    assert _modules("core-no-client", "forbidden_modules") == client | devtools | SERVICES


# A runner that sees only the copy: without `site`, the editable installs' import hooks (which
# would add the real shared/core to the namespace) stay out, and site-packages is on the path
# only for import-linter itself.
_RUNNER = (
    "import sys; sys.path[:0] = sys.argv[1].split(':'); sys.path.extend(sys.argv[2].split(':'));"
    "sys.argv = ['lint-imports', *sys.argv[3:]];"
    "from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
)


def _lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    roots = ":".join(str(tree / root) for root in SOURCE_ROOTS)
    libraries = ":".join(
        sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    )
    options = [arg for contract in contracts for arg in ("--contract", contract)]
    command = [sys.executable, "-S", "-c", _RUNNER, roots, libraries, "--no-cache", "--no-logo"]
    return subprocess.run(
        [*command, *options],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for root in SOURCE_ROOTS:
        for package in (ROOT / root).glob("theodolite*"):
            if package.is_dir() and not package.name.endswith(".egg-info"):
                shutil.copytree(
                    package,
                    copy / root / package.name,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
    return copy


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


# (contract, the package in the copy that gets a new module, the forbidden import it makes)
VIOLATIONS = [
    ("services-independent", "services/api/theodolite_api", "import theodolite_registry"),
    ("plugins-sdk-only", "plugins/data/theodolite_data", "import theodolite.broker"),
    ("plugins-sdk-only", "plugins/reports/theodolite_reports", "import theodolite.cli"),
    ("sdk-self-contained", "shared/sdk/theodolite/sdk", "import theodolite.settings"),
    ("sdk-self-contained", "shared/sdk/theodolite/sdk", "import theodolite_models"),
    ("client-no-server", "shared/client/theodolite/client", "import theodolite.db"),
    ("client-no-server", "shared/client/theodolite/cli", "import theodolite.devstack"),
    ("core-no-client", "shared/core/theodolite/db", "import theodolite.client"),
    ("core-no-client", "shared/core/theodolite/graphs", "import theodolite_worker"),
    ("api-routes-thin", "services/api/theodolite_api/routes", "import theodolite_api.loops"),
]


@pytest.mark.parametrize(("contract", "package", "statement"), VIOLATIONS)
def test_a_forbidden_import_breaks_the_contract(
    tree: Path, contract: str, package: str, statement: str
) -> None:
    probe = tree / package / "_probe.py"
    probe.write_text(f"{statement}\n")
    try:
        result = _lint_imports(tree, contract)
    finally:
        probe.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]['name']} BROKEN" in result.stdout
    importer = package.split("/", 2)[2].replace("/", ".") + "._probe"
    assert importer in result.stdout  # the probe is named as the culprit
