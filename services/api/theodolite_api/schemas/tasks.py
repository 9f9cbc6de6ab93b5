from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class TaskPublic(BaseModel):
    reference: str  # what a graph step names: <plugin>.<task>
    plugin: str
    version: str
    description: str | None
    retries: int
    inputs: dict[str, Any]
    output: dict[str, Any]
