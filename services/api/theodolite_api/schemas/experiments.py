from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ExperimentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    description: str | None = Field(None, max_length=5000)


class ExperimentPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    mlflow_experiment_id: str
    mlflow_url: str
    created_at: datetime
