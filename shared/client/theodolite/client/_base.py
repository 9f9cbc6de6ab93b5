"""The base of every model the client reads: unknown fields kept, and read like the JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """An answer of the api; also reads like the dict the api sent (``job["status"]``)."""

    # A newer api may add fields: they are kept (``model_extra``), not refused.
    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        return self.model_dump(mode="json")[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value of ``key``, or ``default``."""
        return self.model_dump(mode="json").get(key, default)
