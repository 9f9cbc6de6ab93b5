"""The SDK and the client install alone: a fresh venv each, the distribution installed from its
folder as a user would, then imported. Neither may bring or import a database, broker or S3
library, nor any server code of the project."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_LIBRARIES = ["asyncpg", "sqlalchemy", "sqlmodel", "aio_pika", "minio", "alembic"]
SERVER_MODULES = ["theodolite.broker", "theodolite.db", "theodolite.events", "theodolite.lifecycle"]

# A checkout has no sync.py either: the client's is gitignored, written by an editable install.
_LOCAL_STATE = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "sync.py")

PROBE = """
import importlib, importlib.util, json, sys
for module in {imports!r}:
    importlib.import_module(module)
print(json.dumps({{
    "installed": [m for m in {libraries!r} if importlib.util.find_spec(m) is not None],
    "imported": sorted(m for m in sys.modules if m.split(".")[0] in {libraries!r}
                       or m in {server!r}),
}}))
"""


def _fresh_install(tmp_path: Path, folder: str) -> Path:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # A copy, as a user's checkout would be: pip's build leaves nothing in the repository.
    source = shutil.copytree(ROOT / folder, tmp_path / "source", ignore=_LOCAL_STATE)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(source)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return python


@pytest.mark.parametrize(
    ("folder", "imports"),
    [
        ("shared/sdk", ["theodolite.sdk"]),
        (
            "shared/client",
            [
                "theodolite.client",
                "theodolite.cli",
                "theodolite.client.aio",
                "theodolite.client.sync",
            ],
        ),
    ],
)
def test_installs_alone_and_imports_without_server_libraries(
    tmp_path: Path, folder: str, imports: list[str]
) -> None:
    python = _fresh_install(tmp_path, folder)
    probe = PROBE.format(imports=imports, libraries=SERVER_LIBRARIES, server=SERVER_MODULES)
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"installed": [], "imported": []}


def test_the_installed_client_runs_its_command_line(tmp_path: Path) -> None:
    python = _fresh_install(tmp_path, "shared/client")
    done = subprocess.run(
        [str(python), "-m", "theodolite", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "submit" in done.stdout and "experiments" in done.stdout
    # Server and development commands come only with their distributions.
    assert "stack" not in done.stdout.split("Commands")[-1]
    assert sys.executable != str(python)


def test_the_installed_sync_client_is_generated_from_the_installed_aio_py(tmp_path: Path) -> None:
    """sync.py is not committed: the build writes it into the wheel, not into the source."""
    python = _fresh_install(tmp_path, "shared/client")
    done = subprocess.run(
        [str(python), "-c", WHERE, "theodolite.client.aio", "theodolite.client.sync"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True,
    )  # fmt: skip
    aio, sync = (Path(line) for line in done.stdout.split())
    assert tmp_path / "venv" in sync.parents
    assert sync.read_text() == _unasync_aio().sync_source(aio)
    assert not (tmp_path / "source" / "theodolite" / "client" / "sync.py").exists()


WHERE = "import importlib, sys; print(*(importlib.import_module(m).__file__ for m in sys.argv[1:]))"


def _unasync_aio() -> ModuleType:
    """The client's sync generator (a script of the source folder, in no distribution)."""
    path = ROOT / "shared" / "client" / "scripts" / "unasync_aio.py"
    spec = importlib.util.spec_from_file_location("unasync_aio", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
