"""MLproject files: parsing, typed parameter validation and command rendering.

Follows MLflow Projects semantics (parameters substituted shell-quoted into the entry point's
command, ``path`` values made absolute), and adds what MLflow leaves out: values are checked
against their declared type, and unknown or missing parameters are refused.
"""

from __future__ import annotations

import math
import re
import shlex
import string
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, Field

from theodolite.problems import Problem, ProblemsError, control_character_message

MLPROJECT_FILENAME = "MLproject"
# A placeholder is a plain {name}: nothing str.format reads as attribute, index, spec or brace.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
ParameterType = Literal["float", "int", "string", "path", "uri"]
PARAMETER_TYPES: tuple[str, ...] = ("float", "int", "string", "path", "uri")


class ParameterSpec(BaseModel):
    type: ParameterType = "string"
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


class EntryPointSpec(BaseModel):
    command: str
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)


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
    raw_entry_points = document.get("entry_points")
    if not isinstance(raw_entry_points, dict) or not raw_entry_points:
        problems.append(_problem("MLproject.entry_points", "must map at least one entry point"))
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
        parameters = parse_parameters(raw.get("parameters") or {}, where, problems)
        problems += [
            _problem(f"{where}.command", message)
            for message in command_problems(command, set(parameters))
        ]
        entry_points[str(ep_name)] = EntryPointSpec(command=command, parameters=parameters)
    if problems:
        raise ProblemsError("invalid MLproject", problems)
    return ProjectSpec(name=name, entry_points=entry_points)


def parse_parameters(
    raw_parameters: Any, where: str, problems: list[Problem]
) -> dict[str, ParameterSpec]:
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
        # MLflow accepts both ``alpha: float`` and ``alpha: {type: float, default: 0.1}``.
        spec = {"type": raw} if isinstance(raw, str) else raw
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            problems.append(_problem(field, "must be a type name or a mapping"))
            continue
        declared = spec.get("type", "string")
        if declared not in PARAMETER_TYPES:
            problems.append(
                _problem(
                    f"{field}.type", f"unknown type {declared!r}; use one of {PARAMETER_TYPES}"
                )
            )
            continue
        default = spec.get("default")
        default_text = None if default is None else str(default)
        if default_text is not None and (error := type_error(declared, default)) is not None:
            problems.append(_problem(f"{field}.default", error))
            continue
        parameters[str(param_name)] = ParameterSpec(type=declared, default=default_text)
    return parameters


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
    """Why ``value`` does not parse as ``declared``, or None when it does."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return f"expected {declared}, got {type(value).__name__} {value!r}"
    text = str(value)
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
        return None
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
        declared = ", ".join(sorted(entry_point.parameters)) or "none"
        problems.append(
            _problem(f"{field_prefix}.{name}", f"unknown parameter (declared: {declared})")
        )
    for name, spec in entry_point.parameters.items():
        if name not in values:
            if spec.required:
                problems.append(
                    _problem(f"{field_prefix}.{name}", f"required {spec.type} parameter is missing")
                )
            else:
                assert spec.default is not None
                resolved[name] = spec.default
            continue
        value = values[name]
        if name in deferred:
            resolved[name] = str(value)
            continue
        if (error := type_error(spec.type, value)) is not None:
            problems.append(_problem(f"{field_prefix}.{name}", error))
            continue
        resolved[name] = (
            str(int(value)) if spec.type == "int" and isinstance(value, float) else str(value)
        )
    if problems:
        raise ProblemsError("invalid parameters", problems)
    return resolved


def render_command(entry_point: EntryPointSpec, values: dict[str, str], project_dir: Path) -> str:
    """The shell command with parameters substituted and quoted, as MLflow Projects does."""
    problems = command_problems(entry_point.command, set(entry_point.parameters))
    if problems:  # an archive stored before these checks existed
        raise ProblemsError("unsafe command", [_problem("command", p) for p in problems])
    quoted: dict[str, str] = {}
    for name, value in values.items():
        spec = entry_point.parameters[name]
        if spec.type == "path" and not Path(value).is_absolute():
            value = str((project_dir / value).resolve())
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
    return PYTHON_TYPES[declared](text)
