from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict

from theodolite.problems import (
    PLUGIN_NAME_PATTERN,
    PLUGIN_VERSION_PATTERN,
    control_character_message,
)
from theodolite.sandbox.limits import SandboxLimits

T = TypeVar("T")

# Bounds of the list routes' paging: beyond them the database's int64 overflows (a 500).
MAX_OFFSET = 2**31 - 1
MAX_LIMIT = 500


class RequestBody(BaseModel):
    """Every request body's base: a field it does not declare (``timeout`` for ``timeout_s``)
    is refused by name with a 422, never silently dropped. Response models stay lenient."""

    model_config = ConfigDict(extra="forbid")


def _plain_name(value: str) -> str:
    message = control_character_message(value, allow_whitespace=False)
    if message:
        raise ValueError(message)
    return value


def _plain_text(value: str) -> str:
    message = control_character_message(value, allow_whitespace=True)
    if message:
        raise ValueError(message)
    return value


# A name (of an experiment, queue, entry point, parameter, ...): no control characters at all.
Name = Annotated[str, AfterValidator(_plain_name)]
# Free text (a description): tabs and line breaks, but no NUL or other control characters.
Text = Annotated[str, AfterValidator(_plain_text)]


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int  # the total of matches, not the length of this page


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most items to return.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]

# Plugin path segments, checked before anything is forwarded to the registry.
PluginNamePath = Annotated[
    str, Path(pattern=PLUGIN_NAME_PATTERN, max_length=200, description="A plugin's name.")
]
PluginVersionPath = Annotated[
    str, Path(pattern=PLUGIN_VERSION_PATTERN, max_length=100, description="A PEP 440 version.")
]


def limits_row(limits: SandboxLimits | None) -> dict[str, int] | None:
    """Sandbox limits as a row stores them: only the ones set; None when none is."""
    return (limits.model_dump(exclude_none=True) or None) if limits is not None else None
