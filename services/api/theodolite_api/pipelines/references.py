"""``${<stage>.<what>}`` in a stage's parameter values: parsed at submission, substituted when the
stage is queued, from what its upstream stages' jobs and MLflow runs hold."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

REFERENCE = re.compile(r"\$\{([^{}]*)\}")
# What a stage exposes: its job, its run and the run's artifact root, and its run's values.
SCALARS = ("run_id", "artifact_uri", "job_id")
KEYED = ("metrics", "params")
FORMS = "${<stage>.run_id|artifact_uri|job_id|metrics.<key>|params.<key>}"


@dataclass(frozen=True)
class Reference:
    stage: str
    what: str  # one of SCALARS, or "metrics" / "params"
    key: str | None = None  # the metric's or parameter's name

    def __str__(self) -> str:
        tail = f".{self.key}" if self.key is not None else ""
        return f"${{{self.stage}.{self.what}{tail}}}"


class ResolutionError(ValueError):
    """A reference that cannot be resolved from what the upstream stage produced."""


def _parse_one(text: str) -> Reference | None:
    stage, dot, rest = text.partition(".")
    if not stage or not dot:
        return None
    if rest in SCALARS:
        return Reference(stage, rest)
    what, dot, key = rest.partition(".")
    if what in KEYED and dot and key:
        return Reference(stage, what, key)
    return None


def parse(value: Any) -> tuple[list[Reference], list[str]]:
    """The references in a parameter value (only strings hold any), and each malformed one."""
    if not isinstance(value, str):
        return [], []
    found: list[Reference] = []
    bad: list[str] = []
    for match in REFERENCE.finditer(value):
        reference = _parse_one(match.group(1).strip())
        if reference is None:
            bad.append(f"bad reference {match.group(0)}: give {FORMS}")
        else:
            found.append(reference)
    return found, bad


async def substitute(template: str, value_of: Callable[[Reference], Awaitable[str]]) -> str:
    """The template with each reference replaced by its value (ResolutionError if one fails)."""
    parts: list[str] = []
    position = 0
    for match in REFERENCE.finditer(template):
        reference = _parse_one(match.group(1).strip())
        if reference is None:  # refused at submission; a stored template never holds one
            raise ResolutionError(f"bad reference {match.group(0)}")
        parts.append(template[position : match.start()])
        parts.append(await value_of(reference))
        position = match.end()
    parts.append(template[position:])
    return "".join(parts)
