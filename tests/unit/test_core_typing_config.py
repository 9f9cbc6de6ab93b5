"""mypy holds every module of the core to the strict flags (pyproject.toml, [tool.mypy])."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MYPY = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
CORE = ROOT / "shared" / "core" / "theodolite"


def _strict_modules() -> set[str]:
    (override,) = [o for o in MYPY["overrides"] if o.get("disallow_any_generics")]
    assert override["warn_return_any"] and not override["implicit_reexport"]
    return set(override["module"])


def test_every_core_module_is_strict() -> None:
    expected = {f"theodolite.{path.stem}" for path in CORE.glob("*.py")} | {
        f"theodolite.{path.name}.*" for path in CORE.iterdir() if (path / "__init__.py").exists()
    }
    assert _strict_modules() == expected
