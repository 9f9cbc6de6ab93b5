"""Pipelines: a named DAG of stages, each one job (or one per point of a sweep), whose parameters
may reference what earlier stages produced (``${train.artifact_uri}``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from theodolite_api.schemas.common import Name, RequestBody

Scalar = str | int | float | bool

REFERENCE_HELP = (
    "A string value may reference an upstream stage: ${<stage>.run_id}, ${<stage>.artifact_uri} "
    "(runs:/<run id>), ${<stage>.job_id}, ${<stage>.metrics.<key>} or ${<stage>.params.<key>}. "
    "A reference implies a dependency."
)


class StageSweep(RequestBody):
    """A stage run once per point: the product of ``grid`` values, times ``seeds``."""

    grid: dict[Name, list[Scalar]] = Field(
        default_factory=dict, description="Swept parameters: one job per combination."
    )
    seeds: list[int] = Field(
        default_factory=list, description="Each combination runs once per seed (`seed_param`)."
    )
    seed_param: Name = "seed"


class StageCreate(RequestBody):
    entrypoint_id: uuid.UUID
    entry_point: Name = "main"
    params: dict[Name, Any] = Field(default_factory=dict, description=REFERENCE_HELP)
    queue: Name = "cpu"
    timeout_s: int | None = Field(None, gt=0)
    depends_on: list[Name] = Field(
        default_factory=list, max_length=50, description="Stages that must succeed first."
    )
    max_retries: int = Field(0, ge=0, le=20, description="Retries after infrastructure failures.")
    retry_on_failure: bool = False
    sweep: StageSweep | None = Field(None, description="Run this stage once per point.")
    fan_in: bool = Field(
        False,
        description="Downstream of a sweep: run once after all its points (references to the "
        "swept stage become JSON lists, one value per point) instead of once per point.",
    )


class PipelineCreate(RequestBody):
    experiment_id: uuid.UUID
    name: Name = Field(max_length=200)
    stages: dict[Name, StageCreate] = Field(
        min_length=1, max_length=50, description="Stage name -> stage; the order is free."
    )


class StageJobPublic(BaseModel):
    """One job of a stage: the only one, or that of one sweep point."""

    job_id: uuid.UUID
    status: str
    point: dict[str, Any] = Field(default_factory=dict)  # swept values; empty for a plain stage
    mlflow_run_id: str | None = None
    error: str | None = None


class StagePublic(BaseModel):
    name: str
    status: str  # waiting | queued | running | succeeded | failed | skipped | cancelled | ...
    depends_on: list[str]  # declared and implied by references, sorted
    jobs: list[StageJobPublic]


class PipelineSummary(BaseModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    name: str
    status: str  # running | succeeded | failed | cancelled
    finished: bool
    mlflow_run_id: str | None  # the parent run the stages' runs are nested under
    created_at: datetime
    updated_at: datetime


class PipelinePublic(PipelineSummary):
    mlflow_run_url: str | None
    stages: list[StagePublic]  # upstream first
