from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from theodolite_api.schemas.common import Name, RequestBody

Scalar = str | int | float | bool


class SweepCreate(RequestBody):
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: Name = "main"
    name: Name | None = Field(None, max_length=200)
    params: dict[Name, Any] = Field(
        default_factory=dict, description="Parameter values every point shares."
    )
    grid: dict[Name, list[Scalar]] = Field(
        default_factory=dict,
        description="Swept parameters: one job per combination of their values (the product).",
    )
    seeds: list[int] = Field(
        default_factory=list,
        description="Each combination runs once per seed, passed as the `seed_param` parameter.",
    )
    seed_param: Name = "seed"
    repeats: int = Field(1, ge=1, le=100, description="Runs of each combination (and seed).")
    metrics: list[Name] = Field(
        default_factory=list,
        description="Metrics of the table and figure; empty: every metric the jobs log.",
    )
    queue: Name = "cpu"
    timeout_s: int | None = Field(None, gt=0)
    max_retries: int = Field(0, ge=0, le=20)
    retry_on_failure: bool = False


class MetricSummary(BaseModel):
    mean: float
    std: float  # population standard deviation; 0 for one value
    min: float
    max: float
    n: int


class SweepPointPublic(BaseModel):
    """One child job: the swept values it ran with, its status and its chosen metrics."""

    position: int
    values: dict[str, Any]
    repeat: int
    job_id: uuid.UUID
    status: str
    metrics: dict[str, float]


class SweepRowPublic(BaseModel):
    """One combination of grid values, summarized over its seeds and repeats."""

    values: dict[str, Any]
    jobs: int
    statuses: dict[str, int]
    metrics: dict[str, MetricSummary]


class SweepSummary(BaseModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    entrypoint_id: uuid.UUID
    entry_point: str
    name: str | None
    queue: str
    params: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[Any]
    seed_param: str
    repeats: int
    metrics: list[str]
    status: str  # queued | running | succeeded | failed | cancelled
    finished: bool
    counts: dict[str, int]  # jobs per status
    created_at: datetime


class SweepPublic(SweepSummary):
    points: list[SweepPointPublic]
    table: list[SweepRowPublic]
    figure_url: str | None  # once the sweep has finished
