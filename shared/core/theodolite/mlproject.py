"""MLproject files: parsing, typed parameter validation and command rendering.

Follows MLflow Projects semantics (the MLproject file found whatever its capitals, any type name
accepted and an unknown one read as ``string``, values turned into text with ``str`` as MLflow
does, ``.py`` and ``.sh`` files runnable as entry points with extra parameters appended as
``--name value``, parameters substituted shell-quoted into the entry point's command, ``path``
values made absolute), and adds what MLflow leaves out: values are checked against the types it
knows, and unknown or missing parameters of a declared entry point are refused.
"""

from __future__ import annotations

import math
import re
import shlex
import string
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, Field

from theodolite.downloads import WORKER_SCHEMES
from theodolite.problems import Problem, ProblemsError, control_character_message

MLPROJECT_FILENAME = "MLproject"
# A placeholder is a plain {name}: nothing str.format reads as attribute, index, spec or brace.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
PARAMETER_TYPES: tuple[str, ...] = ("float", "int", "string", "path", "uri")
# What MLflow runs a file entry point with (it takes $SHELL for .sh; a worker's is bash).
FILE_RUNNERS: dict[str, str] = {".py": "python", ".sh": "bash"}


class ParameterSpec(BaseModel):
    type: str = "string"  # as declared; one MLflow does not know reads as string
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def kind(self) -> str:
        """The type the value is checked and used as."""
        return effective_type(self.type)


class EntryPointSpec(BaseModel):
    command: str
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    # A .py or .sh file run directly, as ``mlflow run -e train.py`` does: its command is fixed,
    # and parameters it does not declare (it declares none) are appended as --name value.
    file: bool = False


class ProjectSpec(BaseModel):
    name: str | None = None
    entry_points: dict[str, EntryPointSpec]


def _problem(field: str, message: str) -> Problem:
    return Problem(field=field, message=message)


def parse_mlproject(text: str) -> ProjectSpec:
    """Parse an MLproject file; raise ProblemsError naming every problem in it."""
    if (message := control_character_message(text, allow_whitespace=True)) is not None:
        raise ProblemsError("invalid MLproject", [_problem("MLproject", message)])
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProblemsError(
            "invalid MLproject", [_problem("MLproject", f"not YAML: {exc}")]
        ) from exc
    if not isinstance(document, dict):
        raise ProblemsError("invalid MLproject", [_problem("MLproject", "must be a YAML mapping")])
    problems: list[Problem] = []
    name = document.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(_problem("MLproject.name", "must be a string"))
    # YAML escapes ("\0", "\x1b") make control characters the text itself does not hold.
    problems += _control_character_problems(document, "MLproject")
    # MLflow allows an MLproject without entry points: files then run directly.
    raw_entry_points = document.get("entry_points") or {}
    if not isinstance(raw_entry_points, dict):
        problems.append(_problem("MLproject.entry_points", "must map entry point names"))
        raise ProblemsError("invalid MLproject", problems)
    entry_points: dict[str, EntryPointSpec] = {}
    for ep_name, raw in raw_entry_points.items():
        where = f"MLproject.entry_points.{ep_name}"
        if not isinstance(raw, dict):
            problems.append(_problem(where, "must be a mapping with a command"))
            continue
        command = raw.get("command")
        if not isinstance(command, str) or not command.strip():
            problems.append(_problem(f"{where}.command", "must be a non-empty string"))
            continue
        warnings: list[str] = []
        declared: set[str] = set()
        parameters = parse_parameters(
            raw.get("parameters") or {}, where, problems, warnings=warnings, declared=declared
        )
        # Every declared name counts, even one refused above: else a refused type would be
        # followed by a misleading "uses {x}, which is not a parameter".
        problems += [
            _problem(f"{where}.command", message) for message in command_problems(command, declared)
        ]
        entry_points[str(ep_name)] = EntryPointSpec(
            command=command, parameters=parameters, warnings=warnings
        )
    if problems:
        raise ProblemsError("invalid MLproject", problems)
    return ProjectSpec(name=name, entry_points=entry_points)


def parse_parameters(
    raw_parameters: Any,
    where: str,
    problems: list[Problem],
    *,
    warnings: list[str] | None = None,
    declared: set[str] | None = None,
) -> dict[str, ParameterSpec]:
    """The parameters of one entry point; problems, warnings and every well-named parameter
    (``declared``, refused ones included) are added to the lists given. Without a warnings
    list, an unknown type name is a problem rather than a string."""
    prefix = f"{where}.parameters" if where else "parameters"
    if not isinstance(raw_parameters, dict):
        problems.append(_problem(prefix, "must be a mapping"))
        return {}
    parameters: dict[str, ParameterSpec] = {}
    for param_name, raw in raw_parameters.items():
        field = f"{prefix}.{param_name}"
        if not PARAMETER_NAME.fullmatch(str(param_name)):
            problems.append(
                _problem(field, "a parameter name is letters, digits, _ and - (a plain {name})")
            )
            continue
        if declared is not None:
            declared.add(str(param_name))
        # MLflow accepts both ``alpha: float`` and ``alpha: {type: float, default: 0.1}``.
        spec = {"type": raw} if isinstance(raw, str) else raw
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            problems.append(_problem(field, "must be a type name or a mapping"))
            continue
        raw_type = spec.get("type", "string")
        type_name = raw_type if isinstance(raw_type, str) else str(raw_type)
        if type_name not in PARAMETER_TYPES and warnings is None:
            # A task graph's own parameters are the testbed's, not MLflow's: strict.
            problems.append(
                _problem(
                    f"{field}.type", f"unknown type {type_name!r}; use one of {PARAMETER_TYPES}"
                )
            )
            continue
        if type_name not in PARAMETER_TYPES and warnings is not None:
            warnings.append(
                f"parameter {param_name}: type {type_name!r} is not one of {PARAMETER_TYPES}; "
                "read as string, as MLflow does"
            )
        default = spec.get("default")
        if default is not None and (error := type_error(type_name, default)) is not None:
            if effective_type(type_name) == "path" and error == remote_path_problem(
                as_text(default)
            ):
                # MLflow would download it; here a job must give another value (see resolve).
                if warnings is not None:
                    warnings.append(f"parameter {param_name}: the default {error}")
            else:
                problems.append(_problem(f"{field}.default", error))
                continue
        parameters[str(param_name)] = ParameterSpec(
            type=type_name, default=None if default is None else as_text(default)
        )
    return parameters


def effective_type(declared: str) -> str:
    """The type a declared type name is used as: MLflow reads any name it does not know as
    string."""
    return declared if declared in PARAMETER_TYPES else "string"


def as_text(value: Any) -> str:
    """A value as the text MLflow passes to the command: ``str`` of it (``False``, ``0.1``,
    ``[1, 2]``)."""
    return value if isinstance(value, str) else str(value)


def _control_character_problems(value: Any, where: str) -> list[Problem]:
    """Every string (key or value) under ``value`` that holds a control character."""
    if isinstance(value, str):
        message = control_character_message(value, allow_whitespace=True)
        return [] if message is None else [_problem(where, message)]
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (
                message := control_character_message(key, allow_whitespace=False)
            ):
                problems.append(_problem(where, f"key {key!r}: {message}"))
            problems += _control_character_problems(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _control_character_problems(item, f"{where}.{index}")
    return problems


def _placeholders(command: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """``command`` as (literal text, field, format spec, conversion) pieces; ValueError when
    its braces do not pair."""
    return list(string.Formatter().parse(command))


def command_problems(command: str, parameters: set[str]) -> list[str]:
    """Why ``command`` cannot be rendered safely, if it cannot: every placeholder must be a
    plain ``{name}`` of a declared parameter (no ``!r`` conversion, no ``:spec``, no attribute
    or index) standing outside quotes, backticks and escapes, where its shell-quoted value is
    exactly one word."""
    try:
        pieces = _placeholders(command)
    except ValueError as exc:
        return [f"unbalanced braces ({exc}); write {{{{ and }}}} for literal braces"]
    problems: list[str] = []
    shell = _ShellQuoting()
    for literal, field, spec, conversion in pieces:
        shell.feed(literal)
        if field is None:
            continue
        shown = (
            "{"
            + field
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if conversion is not None or spec:
            problems.append(
                f"{shown}: conversions and format specs are not allowed; write {{name}}"
            )
        elif field not in parameters:
            problems.append(f"uses {shown}, which is not a parameter")
        elif (context := shell.context()) is not None:
            problems.append(
                f"{shown} stands {context}: the value is shell-quoted already, "
                "write it bare (--flag {name})"
            )
        shell.feed("x")  # the quoted value: one plain word
    return problems


class _ShellQuoting:
    """Enough of POSIX shell quoting to tell whether a position is inside quotes, backticks,
    an escape or right after ``$``: where a shell-quoted value would not stay one word."""

    def __init__(self) -> None:
        self._single = self._double = self._backtick = self._escaped = self._dollar = False

    def feed(self, text: str) -> None:
        for char in text:
            if self._escaped:
                self._escaped = False
            elif self._single:
                self._single = char != "'"
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._double = not self._double
            elif char == "`":
                self._backtick = not self._backtick
            elif char == "'" and not self._double:
                self._single = True
            self._dollar = char == "$" and not self._escaped and not self._single

    def context(self) -> str | None:
        if self._single:
            return "inside single quotes"
        if self._double:
            return "inside double quotes"
        if self._backtick:
            return "inside backticks"
        if self._escaped:
            return "after a backslash"
        if self._dollar:
            return "after $"
        return None


def type_error(declared: str, value: Any) -> str | None:
    """Why ``value`` does not parse as ``declared``, or None when it does. A boolean, list or
    mapping is text to a string (as ``str`` writes it, like MLflow), never a number."""
    declared = effective_type(declared)
    if value is None or (declared in ("float", "int") and isinstance(value, (bool, list, dict))):
        return f"expected {declared}, got {type(value).__name__} {value!r}"
    text = as_text(value)
    # PostgreSQL refuses NUL in text; tabs and line breaks pass in strings only.
    if (
        message := control_character_message(text, allow_whitespace=declared == "string")
    ) is not None:
        return message
    if declared == "float":
        try:
            number = float(text)
        except ValueError:
            return f"{text!r} is not a float"
        if math.isnan(number) or math.isinf(number):
            return f"{text!r} is not a finite float"
        return None
    if declared == "int":
        if isinstance(value, float) and not value.is_integer():
            return f"{text!r} is not an int"
        try:
            int(text if not isinstance(value, float) else int(value))
        except ValueError:
            return f"{text!r} is not an int"
        return None
    if declared == "path":
        if not text or "\x00" in text:
            return "a path must be a non-empty string without NUL"
        return remote_path_problem(text)
    if declared == "uri":
        parsed = urlparse(text)
        if not parsed.scheme or not (parsed.netloc or parsed.path):
            return f"{text!r} is not a URI (expected scheme:..., e.g. s3://bucket/key)"
        return None
    return None  # string: anything goes


def resolve_parameters(
    entry_point: EntryPointSpec,
    values: dict[str, Any],
    *,
    field_prefix: str = "params",
    deferred: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Check user values against the declaration and fill defaults; raise with every problem.
    ``deferred`` values (a pipeline stage's references) are declared but typed once resolved."""
    problems: list[Problem] = []
    resolved: dict[str, str] = {}
    for name in sorted(set(values) - set(entry_point.parameters)):
        if entry_point.file:
            # MLflow appends them as --name value: the name must stay one plain word.
            if not PARAMETER_NAME.fullmatch(name):
                problems.append(
                    _problem(f"{field_prefix}.{name}", "a name is letters, digits, _ and -")
                )
            elif (error := type_error("string", values[name])) is not None:
                problems.append(_problem(f"{field_prefix}.{name}", error))
            else:
                resolved[name] = as_text(values[name])
            continue
        declared = ", ".join(sorted(entry_point.parameters)) or "none"
        problems.append(
            _problem(f"{field_prefix}.{name}", f"unknown parameter (declared: {declared})")
        )
    for name, spec in entry_point.parameters.items():
        if name not in values:
            if spec.required:
                problems.append(
                    _problem(f"{field_prefix}.{name}", f"required {spec.kind} parameter is missing")
                )
            else:
                assert spec.default is not None
                if spec.kind == "path" and (problem := remote_path_problem(spec.default)):
                    problems.append(_problem(f"{field_prefix}.{name}", f"the default {problem}"))
                resolved[name] = spec.default
            continue
        value = values[name]
        if name in deferred:
            resolved[name] = as_text(value)
            continue
        if (error := type_error(spec.type, value)) is not None:
            problems.append(_problem(f"{field_prefix}.{name}", error))
            continue
        resolved[name] = (
            str(int(value)) if spec.kind == "int" and isinstance(value, float) else as_text(value)
        )
    if problems:
        raise ProblemsError("invalid parameters", problems)
    return resolved


# ``path`` values MLflow downloads that a job may have downloaded: through the job's own
# tracking proxy, which lets it read only what its group may. s3:// and http(s):// are fetched by
# the worker where its operator allows (theodolite.downloads); other object-store and web URLs
# would need credentials or a network the job does not have (docs/mlproject.md).
DOWNLOADED_SCHEMES = ("runs", "models", "mlflow-artifacts")
INPUTS_FOLDER = "inputs"


def _local_path(value: str) -> str | None:
    """The local path a ``path`` value names (no scheme, or ``file:`` without a host), as
    MLflow reads it; None for a remote URI."""
    parsed = urlparse(value)
    if not parsed.scheme or (len(parsed.scheme) == 1 and value[1:3] in (":\\", ":/")):
        return value
    if parsed.scheme == "file" and not parsed.netloc:
        return parsed.path
    return None


def remote_path_problem(value: str) -> str | None:
    """Why a remote ``path`` value cannot be downloaded for a job; None when it can or is
    local."""
    if _local_path(value) is not None:
        return None
    scheme = urlparse(value).scheme
    if scheme in DOWNLOADED_SCHEMES:
        return None
    if scheme in WORKER_SCHEMES:
        return None  # the worker downloads it where its queue allows: checked at submission
    allowed = ", ".join(f"{s}:/" for s in DOWNLOADED_SCHEMES)
    if scheme in ("gs", "wasbs", "abfss", "hdfs", "dbfs", "ftp", "sftp"):
        return (
            f"{scheme}: paths are not downloaded for jobs (the worker's own credentials and "
            f"network are not the job's); log the file to MLflow and pass its URI ({allowed}), "
            "or declare the parameter as uri and read it in the job"
        )
    return f"{value!r}: a path is local or one of {allowed}"


def remote_inputs(
    entry_point: EntryPointSpec, values: dict[str, str], job_dir: Path
) -> dict[str, tuple[str, Path]]:
    """The ``path`` values MLflow would download, each with the local path it gets in the job's
    folder (``inputs/param_N/<name>``, N its place among the parameters, as MLflow numbers)."""
    found: dict[str, tuple[str, Path]] = {}
    if entry_point.file:
        return found
    for position, (name, spec) in enumerate(entry_point.parameters.items()):
        value = values.get(name)
        if spec.kind != "path" or value is None or _local_path(value) is not None:
            continue
        base = PurePosixPath(urlparse(value).path).name
        if base in ("", ".", ".."):  # the file's own name, never a step out of its folder
            base = "download"
        found[name] = (value, job_dir / INPUTS_FOLDER / f"param_{position}" / base)
    return found


def render_command(
    entry_point: EntryPointSpec,
    values: dict[str, str],
    project_dir: Path,
    downloads: dict[str, tuple[str, Path]] | None = None,
) -> str:
    """The shell command with parameters substituted and quoted, as MLflow Projects does;
    a downloaded ``path`` value (``downloads``, from ``remote_inputs``) becomes its local path.
    """
    if entry_point.file:
        # As MLflow: the values it was not told about follow as --name value, quoted.
        extra = [f"--{name} {shlex.quote(value)}" for name, value in sorted(values.items())]
        return " ".join([entry_point.command, *extra])
    problems = command_problems(entry_point.command, set(entry_point.parameters))
    if problems:  # an archive stored before these checks existed
        raise ProblemsError("unsafe command", [_problem("command", p) for p in problems])
    quoted: dict[str, str] = {}
    for name, value in values.items():
        spec = entry_point.parameters[name]
        if downloads and name in downloads:
            value = str(downloads[name][1])
        elif spec.kind == "path":
            # Relative to the project, not to the caller's folder as under mlflow run.
            local = _local_path(value) or value
            value = local if Path(local).is_absolute() else str((project_dir / local).resolve())
        quoted[name] = shlex.quote(value)
    # Each placeholder becomes its quoted value, once; nothing of str.format's own (conversion,
    # spec, attribute) can reach the value.
    rendered = []
    for literal, field, _, _ in _placeholders(entry_point.command):
        rendered.append(literal)
        if field is not None:
            rendered.append(quoted[field])
    return "".join(rendered)


PYTHON_TYPES: dict[str, type[float | int | str]] = {
    "float": float,
    "int": int,
    "string": str,
    "path": str,
    "uri": str,
}


def typed_value(declared: str, text: str) -> float | int | str:
    """A checked parameter's text as the Python value its type names."""
    if declared == "int":
        return int(float(text)) if "." in text or "e" in text.lower() else int(text)
    return PYTHON_TYPES[effective_type(declared)](text)


def mlproject_names(names: Iterable[str]) -> list[str]:
    """The archive's root files MLflow would read as its MLproject: the name in any capitals."""
    return sorted(name for name in names if "/" not in name and name.lower() == "mlproject")


def file_entry_point(name: str) -> EntryPointSpec | None:
    """``name`` as MLflow runs a file given as the entry point (``python`` for ``.py``, ``bash``
    for ``.sh``), or None for a name of another kind."""
    runner = FILE_RUNNERS.get(PurePosixPath(name).suffix)
    if runner is None or name.startswith("-"):
        return None
    return EntryPointSpec(command=f"{runner} {shlex.quote(name)}", file=True)


def runnable_files(names: Iterable[str]) -> dict[str, EntryPointSpec]:
    """The archive's ``.py`` and ``.sh`` files, each as the entry point MLflow would run."""
    found = {}
    for name in sorted(names):
        if (spec := file_entry_point(name)) is not None and not _control_characters(name):
            found[name] = spec
    return found


def _control_characters(text: str) -> bool:
    return control_character_message(text, allow_whitespace=False) is not None


def describe_project(
    files: Iterable[str], read_text: Callable[[str], str], *, fallback_name: str | None
) -> ProjectSpec:
    """The project an archive holds, as ``mlflow run`` sees it: its MLproject (any capitals;
    none is fine) and its ``.py``/``.sh`` files as entry points beside the declared ones
    (which win a name they share). Raise ProblemsError naming every problem."""
    names = list(files)
    found = mlproject_names(names)
    if len(found) > 1:
        raise ProblemsError(
            "invalid archive",
            [_problem("archive", f"more than one MLproject file: {', '.join(found)}")],
        )
    if found:
        project = parse_mlproject(read_text(found[0]))
    else:
        project = ProjectSpec(name=fallback_name, entry_points={})
    entry_points = {**runnable_files(names), **project.entry_points}
    if not entry_points:
        raise ProblemsError(
            "invalid archive",
            [
                _problem(
                    "archive",
                    "no MLproject entry point and no .py or .sh file to run as one",
                )
            ],
        )
    return ProjectSpec(name=project.name, entry_points=entry_points)


def project_name_for(filename: str | None) -> str | None:
    """What a project without an MLproject is called: its archive's name without extensions."""
    if not filename:
        return None
    base = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or None
    return base or None


def entry_point_in(project_dir: Path, name: str) -> EntryPointSpec | None:
    """The entry point ``name`` of an unpacked project, as ``mlflow run`` resolves it: declared
    in its MLproject (any capitals), else a ``.py``/``.sh`` file of the project. Raise
    ProblemsError when the MLproject is invalid."""
    found = mlproject_names(entry.name for entry in project_dir.iterdir() if entry.is_file())
    if len(found) > 1:
        raise ProblemsError("invalid archive", [_problem("archive", "more than one MLproject")])
    if found:
        declared = parse_mlproject((project_dir / found[0]).read_text()).entry_points
        if name in declared:
            return declared[name]
    spec = file_entry_point(name)
    root = project_dir.resolve()
    target = (project_dir / name).resolve()
    if spec is None or not target.is_relative_to(root) or not target.is_file():
        return None
    return spec
