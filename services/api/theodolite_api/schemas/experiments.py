from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from theodolite_api.schemas.common import Name, RequestBody, Text


class ExperimentCreate(RequestBody):
    name: Name = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    description: Text | None = Field(None, max_length=5000)
    group: Name | None = Field(
        None, description="The owning group's name; unset: your only group you submit in."
    )


class ExperimentPublic(BaseModel):
    id: uuid.UUID
    name: str
    group_id: uuid.UUID
    description: str | None
    mlflow_experiment_id: str
    mlflow_url: str
    created_at: datetime
