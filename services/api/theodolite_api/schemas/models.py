from __future__ import annotations

from pydantic import BaseModel


class ModelVersionPublic(BaseModel):
    name: str
    version: str
    uri: str  # what a job parameter of type uri names to load it: models:/<name>/<version>
    run_id: str | None
    source: str | None
    status: str | None
    created_at_ms: int | None


class ModelPublic(BaseModel):
    name: str
    description: str | None
    latest_version: str | None
    created_at_ms: int | None
    mlflow_url: str
