"""``python -I -B -m theodolite_registry.inspect_plugin --result-fd FD ARCHIVE WORKDIR``: what the
registry runs in a sandbox (``validation``) for each candidate plugin.

The result is one JSON object and a newline, written to file descriptor FD (a pipe the registry
passed in) after the import and the task discovery finished, then FD is closed. Nothing on
stdout counts: a plugin's import may print whatever it likes there. A plugin that ends the
process during its import (``os._exit(0)``) leaves FD empty, which the registry rejects.

A wheel is used as it is; a source archive with ``pyproject.toml`` is built into a wheel
(``pip wheel --no-deps --no-build-isolation``). The wheel is unpacked, its
``theodolite.plugins`` entry point imported, its tasks discovered and their contracts derived.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.problems import ProblemsError
from theodolite.sdk.discovery import ENTRY_POINT_GROUP, module_tasks
from theodolite.sdk.schema import task_spec
from theodolite_registry.problem_report import import_problem, output_tail
from theodolite_registry.wheel_identity import WheelProblem, wheel_identity


class Rejected(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


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
            "-I",
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        output = output_tail(result.stderr or result.stdout, [source, out.parent])
        raise Rejected("build", f"building a wheel failed: {output}")
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


def inspect_candidate(archive: Path, workdir: Path) -> dict[str, Any]:
    limits = ArchiveLimits()
    wheel = _wheel_of(archive, workdir, limits)
    unpacked = workdir / "unpacked"
    with zipfile.ZipFile(wheel) as whl:
        try:
            identity = wheel_identity(whl)
        except WheelProblem as exc:
            raise Rejected("metadata", str(exc)) from exc
        whl.extractall(unpacked)  # built here, or already checked by inspect_archive
    if len(identity.entry_points) != 1:
        raise Rejected(
            "metadata",
            f'declare exactly one [project.entry-points."{ENTRY_POINT_GROUP}"] entry '
            f"(found {len(identity.entry_points)})",
        )
    ((plugin, module_name),) = identity.entry_points.items()
    sys.path.insert(0, str(unpacked))
    try:
        module = __import__(module_name, fromlist=["_"])
    except BaseException as exc:  # noqa: BLE001 - whatever the import raises is the reason
        raise Rejected(*import_problem(exc, [unpacked])) from exc
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
        "distribution": identity.distribution,
        "version": identity.version,
        "module": module_name,
        "tasks": specs,
        "wheel": str(wheel),
    }


def write_result(fd: int, result: dict[str, Any]) -> None:
    """The one JSON line the registry reads, then end of file."""
    data = (json.dumps(result) + "\n").encode()
    with os.fdopen(fd, "wb", closefd=True) as out:
        out.write(data)


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(prog="inspect_plugin")
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("archive", type=Path)
    parser.add_argument("workdir", type=Path)
    arguments = parser.parse_args()
    os.set_inheritable(arguments.result_fd, False)  # nothing the plugin starts gets it
    validator = os.getpid()
    try:
        result = inspect_candidate(arguments.archive, arguments.workdir)
    except Rejected as exc:
        result = {"ok": False, "kind": exc.kind, "reason": exc.reason}
    except MemoryError:
        result = {
            "ok": False,
            "kind": "memory",
            "reason": "validation ran out of memory (memory limit)",
        }
    sys.stdout.flush()
    if os.getpid() != validator:
        os._exit(1)  # a copy the plugin forked during its import: it reports nothing
    write_result(arguments.result_fd, result)


if __name__ == "__main__":
    main()
