"""A task's contract, derived from its signature with pydantic ``TypeAdapter``s.

Each input and the output get a JSON schema, or, for values with no JSON form (numpy arrays,
estimators, torch modules), an opaque type name. Outputs that are a TypedDict, pydantic model,
dataclass or NamedTuple expose their fields, so graphs can refer to ``$step.field``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, Field, PydanticSchemaGenerationError, TypeAdapter
from pydantic.errors import PydanticUserError

from theodolite.sdk.task import task_options

ANY_TYPE = "any"


class ValueType(BaseModel):
    """The type of one value: a JSON schema, or the name of an opaque type."""

    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    opaque: str | None = None
    # The opaque type and its base classes: a LogisticRegression feeds a BaseEstimator input.
    opaque_bases: list[str] = []
    # For an input of a union type (``np.ndarray | None``): every opaque type it accepts.
    opaque_accepts: list[str] = []
    nullable: bool = False

    def accepts(self, source: ValueType) -> bool:
        wanted = self.opaque_accepts or ([self.opaque] if self.opaque else [])
        offered = source.opaque_bases or ([source.opaque] if source.opaque else [])
        return any(name in offered for name in wanted)

    model_config = {"populate_by_name": True}

    @property
    def is_any(self) -> bool:
        return self.opaque is None and not self.json_schema

    def describe(self) -> str:
        if self.opaque is not None:
            return self.opaque
        if not self.json_schema:
            return ANY_TYPE
        return str(self.json_schema.get("type") or self.json_schema.get("title") or "json")


class InputSpec(ValueType):
    required: bool = True
    default: Any = None
    description: str | None = None


class OutputSpec(ValueType):
    fields: dict[str, ValueType] = {}


class TaskSpec(BaseModel):
    """The serialisable contract of one task: what validation needs, without importing it."""

    name: str
    function: str  # module:qualname
    description: str | None = None
    retries: int = 0
    inputs: dict[str, InputSpec]
    output: OutputSpec


def _qualified(tp: Any) -> str:
    origin = typing.get_origin(tp) or tp
    module = getattr(origin, "__module__", "")
    name = getattr(origin, "__qualname__", None) or getattr(origin, "__name__", None) or str(tp)
    return f"{module}.{name}" if module and module != "builtins" else name


def _union_type(members: tuple[Any, ...]) -> ValueType:
    nullable = type(None) in members
    others = [m for m in members if m is not type(None)]
    if len(others) == 1:
        single = value_type(others[0])
        single.nullable = nullable
        return single
    typed = [value_type(m) for m in others]
    if all(t.opaque is None for t in typed):
        # A union built at runtime is a value to mypy, not a type form: typed as Any here.
        union: Any = typing.Union[tuple(members)]  # noqa: UP007
        return ValueType(json_schema=TypeAdapter(union).json_schema())
    names = [t.opaque or t.describe() for t in typed]
    return ValueType(
        opaque=" | ".join(names),
        opaque_accepts=[t.opaque for t in typed if t.opaque],
        nullable=nullable,
    )


def _typeddict_type(hint: Any) -> ValueType:
    """pydantic refuses ``typing.TypedDict`` before Python 3.12: build its schema per field."""
    fields = {name: value_type(field) for name, field in get_type_hints(hint).items()}
    if any(f.opaque is not None for f in fields.values()):
        origin_bases = [_qualified(c) for c in getattr(hint, "__mro__", ()) if c is not object]
        return ValueType(opaque=_qualified(hint), opaque_bases=origin_bases)
    return ValueType(
        json_schema={
            "type": "object",
            "title": hint.__name__,
            "properties": {name: f.json_schema or {} for name, f in fields.items()},
            "required": sorted(getattr(hint, "__required_keys__", fields)),
        }
    )


def value_type(hint: Any) -> ValueType:
    if hint is inspect.Parameter.empty or hint is Any:
        return ValueType()
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _union_type(typing.get_args(hint))
    if typing.is_typeddict(hint):
        return _typeddict_type(hint)
    try:
        return ValueType(json_schema=TypeAdapter(hint).json_schema())
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        origin = typing.get_origin(hint) or hint
        bases = [_qualified(c) for c in getattr(origin, "__mro__", ()) if c is not object]
        return ValueType(opaque=_qualified(hint), opaque_bases=bases)


def _field_hints(hint: Any) -> dict[str, Any] | None:
    """Named fields of a structured return type, or None."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return {name: f.annotation for name, f in hint.model_fields.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return get_type_hints(hint)
    if typing.is_typeddict(hint) or (isinstance(hint, type) and hasattr(hint, "_fields")):
        return get_type_hints(hint)
    return None


def _docstring_lines(fn: Callable[..., Any]) -> tuple[str | None, dict[str, str]]:
    """The summary line and ``name: text`` descriptions from an Args section."""
    doc = inspect.getdoc(fn)
    if not doc:
        return None, {}
    lines = doc.splitlines()
    descriptions: dict[str, str] = {}
    in_args = False
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.lower() in {"args:", "arguments:", "parameters:"}:
            in_args = True
            continue
        if in_args and ":" in stripped and line.startswith((" ", "\t")):
            key, _, text = stripped.partition(":")
            descriptions[key.strip().split(" ")[0]] = text.strip()
        elif in_args and stripped and not line.startswith((" ", "\t")):
            in_args = False
    return lines[0].strip(), descriptions


def task_spec(fn: Callable[..., Any]) -> TaskSpec:
    """Derive the contract of a ``@task`` function."""
    options = task_options(fn)
    hints = get_type_hints(fn)
    summary, descriptions = _docstring_lines(fn)
    inputs: dict[str, InputSpec] = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        typed = value_type(hints.get(name, inspect.Parameter.empty))
        has_default = parameter.default is not inspect.Parameter.empty
        default = parameter.default if has_default else None
        if has_default and typed.opaque is None:
            try:
                default = TypeAdapter(Any).dump_python(default, mode="json")
            except Exception:
                default = repr(default)
        elif has_default:
            default = None if default is None else repr(default)
        inputs[name] = InputSpec(
            **typed.model_dump(by_alias=True),
            required=not has_default,
            default=default,
            description=descriptions.get(name),
        )
    returned = hints.get("return", inspect.Parameter.empty)
    output = OutputSpec(**value_type(returned).model_dump(by_alias=True))
    if (fields := _field_hints(returned)) is not None:
        output.fields = {name: value_type(hint) for name, hint in fields.items()}
    return TaskSpec(
        name=options["name"],
        function=f"{fn.__module__}:{fn.__qualname__}",
        description=summary,
        retries=options["retries"],
        inputs=inputs,
        output=output,
    )
