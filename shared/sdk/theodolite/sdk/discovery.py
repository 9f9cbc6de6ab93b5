"""Finding plugins and their tasks: packages that declare task modules in the
``theodolite.plugins`` entry-point group of their ``pyproject.toml``:

    [project.entry-points."theodolite.plugins"]
    digits = "theodolite_digits.tasks"

A graph step names a task as ``<plugin>.<task>`` (``digits.train_logistic_regression``).
"""

from __future__ import annotations

import configparser
import importlib
import sys
from collections.abc import Callable
from email.parser import Parser
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from theodolite.sdk.schema import TaskSpec, task_spec
from theodolite.sdk.task import is_task, task_options

ENTRY_POINT_GROUP = "theodolite.plugins"


class PluginSpec(BaseModel):
    name: str
    version: str
    module: str
    tasks: dict[str, TaskSpec]


class Catalogue(BaseModel):
    """Every known plugin and task contract: what static validation needs."""

    plugins: dict[str, PluginSpec] = {}

    def task(self, reference: str) -> TaskSpec | None:
        plugin, _, name = reference.partition(".")
        found = self.plugins.get(plugin)
        return None if found is None else found.tasks.get(name)


TaskFunctions = dict[str, Callable[..., Any]]


def module_tasks(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The ``@task`` functions a module defines or imports, by task name."""
    found = {}
    for value in vars(module).values():
        if is_task(value):
            found[task_options(value)["name"]] = value
    return found


def load_plugin(name: str, module_name: str, version: str) -> tuple[PluginSpec, TaskFunctions]:
    module = importlib.import_module(module_name)
    tasks = module_tasks(module)
    spec = PluginSpec(
        name=name,
        version=version,
        module=module_name,
        tasks={task_name: task_spec(fn) for task_name, fn in tasks.items()},
    )
    functions = {f"{name}.{task_name}": fn for task_name, fn in tasks.items()}
    return spec, functions


def wheel_entry_point(folder: Path) -> tuple[str, str, str]:
    """(plugin name, module, version) of an unpacked plugin wheel."""
    (dist_info,) = folder.glob("*.dist-info")
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((dist_info / "entry_points.txt").read_text())
    ((name, module),) = parser.items(ENTRY_POINT_GROUP)
    version = Parser().parsestr((dist_info / "METADATA").read_text())["Version"]
    return name.strip(), module.strip(), str(version)


def discover_installed(
    extra: dict[str, str] | None = None,
    pinned: dict[str, Path] | None = None,
) -> tuple[Catalogue, TaskFunctions, dict[str, str]]:
    """Plugins with their functions and load errors: ``pinned`` ones (name -> unpacked wheel)
    first and exactly, then the installed ones not pinned, plus ``extra`` (name -> module)."""
    catalogue = Catalogue()
    functions: TaskFunctions = {}
    errors: dict[str, str] = {}
    sources: list[tuple[str, str, str]] = []
    for name, folder in (pinned or {}).items():
        # First on sys.path, before anything imports an installed copy of the same module.
        sys.path.insert(0, str(folder))
        _, module, version = wheel_entry_point(folder)
        sources.append((name, module, version))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in (pinned or {}):
            continue
        version = entry.dist.version if entry.dist is not None else "0"
        sources.append((entry.name, entry.value, version))
    sources.extend((name, module, "local") for name, module in (extra or {}).items())
    for name, module_name, version in sources:
        try:
            spec, found = load_plugin(name, module_name, version)
        except Exception as exc:  # one broken plugin must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        catalogue.plugins[name] = spec
        functions.update(found)
    return catalogue, functions, errors


def main() -> None:
    """``python -m theodolite.sdk.discovery``: the installed catalogue as JSON on stdout, so a
    service can learn it without importing any plugin into its own process."""
    import json
    import warnings

    warnings.simplefilter("ignore")  # plugins' import-time chatter must not corrupt the JSON
    catalogue, _, errors = discover_installed()
    payload = {
        "plugins": [p.model_dump(mode="json", by_alias=True) for p in catalogue.plugins.values()],
        "errors": errors,
    }
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
