"""``python -m theodolite_registry.inspect_plugin ARCHIVE WORKDIR``: what the registry runs in a
subprocess (time- and memory-limited) for each candidate plugin. Prints one JSON object.

A wheel is used as it is; a source archive with ``pyproject.toml`` is built into a wheel
(``pip wheel --no-deps --no-build-isolation``). The wheel is unpacked, its
``theodolite.plugins`` entry point imported, its tasks discovered and their contracts derived.
"""

from __future__ import annotations

import configparser
import inspect
import json
import subprocess
import sys
import traceback
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.problems import ProblemsError
from theodolite.sdk.discovery import ENTRY_POINT_GROUP, module_tasks
from theodolite.sdk.schema import task_spec


class Rejected(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _CaseKeepingParser(configparser.ConfigParser):
    """Keeps option names as written: entry point names are case-sensitive."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _source_root(folder: Path) -> Path:
    if (folder / "pyproject.toml").exists():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "pyproject.toml").exists():
        return children[0]  # sdists keep everything under name-version/
    raise Rejected("metadata", "neither a wheel nor a source archive with pyproject.toml")


def _build_wheel(source: Path, out: Path) -> Path:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise Rejected(
            "build", f"building a wheel failed: {(result.stderr or result.stdout)[-1500:]}"
        )
    wheels = list(out.glob("*.whl"))
    if len(wheels) != 1:
        raise Rejected("build", f"building produced {len(wheels)} wheels")
    return wheels[0]


def _wheel_of(archive: Path, workdir: Path, limits: ArchiveLimits) -> Path:
    data = archive.read_bytes()
    try:
        contents = inspect_archive(data, limits)
    except ProblemsError as exc:
        raise Rejected("archive", str(exc)) from exc
    if contents.format == "zip" and any(n.endswith(".dist-info/METADATA") for n in contents.files):
        return archive
    source = workdir / "source"
    try:
        extract_archive(data, source, limits)
    except ProblemsError as exc:
        raise Rejected("archive", str(exc)) from exc
    return _build_wheel(_source_root(source), workdir / "built")


def _metadata(unpacked: Path) -> tuple[str, str, dict[str, str]]:
    dist_infos = list(unpacked.glob("*.dist-info"))
    if len(dist_infos) != 1:
        raise Rejected("metadata", "the wheel has no single .dist-info folder")
    meta = Parser().parsestr((dist_infos[0] / "METADATA").read_text())
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise Rejected("metadata", "METADATA names no Name and Version")
    entry_points: dict[str, str] = {}
    points_file = dist_infos[0] / "entry_points.txt"
    if points_file.exists():
        parser = _CaseKeepingParser(delimiters=("=",))
        parser.read_string(points_file.read_text())
        if parser.has_section(ENTRY_POINT_GROUP):
            entry_points = {k.strip(): v.strip() for k, v in parser.items(ENTRY_POINT_GROUP)}
    return name, version, entry_points


def _import_error(exc: BaseException) -> Rejected:
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename or '?').name}:{exc.lineno}"
        return Rejected("syntax", f"syntax error in {where}: {exc.msg}")
    if isinstance(exc, MemoryError):
        return Rejected("memory", "importing the plugin ran out of memory (memory limit)")
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return Rejected("import", f"importing the plugin failed{where}: {type(exc).__name__}: {exc}")


def inspect_candidate(archive: Path, workdir: Path) -> dict[str, Any]:
    limits = ArchiveLimits()
    wheel = _wheel_of(archive, workdir, limits)
    unpacked = workdir / "unpacked"
    with zipfile.ZipFile(wheel) as whl:
        whl.extractall(unpacked)  # built here, or already checked by inspect_archive
    distribution, version, entry_points = _metadata(unpacked)
    if len(entry_points) != 1:
        raise Rejected(
            "metadata",
            f'declare exactly one [project.entry-points."{ENTRY_POINT_GROUP}"] entry '
            f"(found {len(entry_points)})",
        )
    ((plugin, module_name),) = entry_points.items()
    sys.path.insert(0, str(unpacked))
    try:
        module = __import__(module_name, fromlist=["_"])
    except BaseException as exc:  # noqa: BLE001 - whatever the import raises is the reason
        raise _import_error(exc) from exc
    tasks = module_tasks(module)
    if not tasks:
        raise Rejected("tasks", f"module {module_name} defines no @task functions")
    problems = []
    specs = {}
    for task_name, fn in tasks.items():
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.annotation is inspect.Parameter.empty:
                problems.append(f"task {task_name}: input '{parameter.name}' has no type hint")
        specs[task_name] = task_spec(fn).model_dump(mode="json", by_alias=True)
    if problems:
        raise Rejected("hints", "; ".join(problems))
    return {
        "ok": True,
        "plugin": plugin,
        "distribution": distribution,
        "version": version,
        "module": module_name,
        "tasks": specs,
        "wheel": str(wheel),
    }


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    archive, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        result = inspect_candidate(archive, workdir)
    except Rejected as exc:
        result = {"ok": False, "kind": exc.kind, "reason": exc.reason}
    except MemoryError:
        result = {
            "ok": False,
            "kind": "memory",
            "reason": "validation ran out of memory (memory limit)",
        }
    sys.stdout.flush()
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
