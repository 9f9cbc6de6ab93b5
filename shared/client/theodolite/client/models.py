"""What the api answers, as typed models. The wire schemas are generated from the api's OpenAPI
document (``_wire.py``, ``make client-models``); this module names them as the client always
has and adds what the client knows on top: a job's end, the event stream, the registry's plugins.

Unknown fields are kept (a newer api may add some), and each model also reads like the dict the
api sent (``job["status"]``, JSON values), so scripts written against plain JSON keep working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field

from theodolite.client import _wire
from theodolite.client._base import ApiModel
from theodolite.client._wire import JobStatus

__all__ = [
    "TERMINAL_STATUSES",
    "ApiKey",
    "ApiKeyCreated",
    "ApiModel",
    "Artifact",
    "Caller",
    "Delivery",
    "DeliveryAttempt",
    "EntryPoint",
    "EntryPointDeclaration",
    "Experiment",
    "Graph",
    "Group",
    "JobData",
    "JobEvent",
    "JobStatus",
    "Member",
    "Metric",
    "MetricPoint",
    "MetricSummary",
    "ModelVersion",
    "Page",
    "Parameter",
    "Pipeline",
    "PipelineStage",
    "PipelineStageJob",
    "PipelineSummary",
    "PluginSummary",
    "PluginVersion",
    "Problem",
    "Progress",
    "Queue",
    "QueueDetail",
    "RegisteredModel",
    "Sweep",
    "SweepPoint",
    "SweepRow",
    "SweepSummary",
    "Task",
    "Transition",
    "User",
    "Webhook",
    "WebhookCreated",
]

# The statuses a job never leaves. The OpenAPI document lists the statuses but not which end a
# job; the server's lifecycle says (tests/unit/test_client_contract.py compares the two), and the
# client imports no server code. Named through the generated enum, so a renamed status fails here.
TERMINAL_STATUSES = frozenset(
    status.value
    for status in (
        JobStatus.succeeded,
        JobStatus.failed,
        JobStatus.cancelled,
        JobStatus.timed_out,
        JobStatus.skipped,
    )
)

T = TypeVar("T")

# The api's answers under the names the client has always given them.
ApiKey = _wire.KeyPublic
ApiKeyCreated = _wire.KeyCreated
Artifact = _wire.ArtifactPublic
Caller = _wire.CallerPublic
Delivery = _wire.DeliveryPublic
DeliveryAttempt = _wire.DeliveryAttemptPublic
EntryPoint = _wire.EntryPointArchivePublic
EntryPointDeclaration = _wire.EntryPointPublic
Experiment = _wire.ExperimentPublic
Graph = _wire.GraphPublic
Group = _wire.GroupPublic
Member = _wire.MemberPublic
Metric = _wire.MetricPublic
MetricPoint = _wire.MetricPoint
MetricSummary = _wire.MetricSummary
ModelVersion = _wire.ModelVersionPublic
Parameter = _wire.ParameterPublic
Pipeline = _wire.PipelinePublic
PipelineStage = _wire.StagePublic
PipelineStageJob = _wire.StageJobPublic
PipelineSummary = _wire.PipelineSummary
Problem = _wire.Problem
Progress = _wire.ProgressPublic
Queue = _wire.QueuePublic
QueueDetail = _wire.QueueDetail
RegisteredModel = _wire.ModelPublic
Sweep = _wire.SweepPublic
SweepPoint = _wire.SweepPointPublic
SweepRow = _wire.SweepRowPublic
SweepSummary = _wire.SweepSummary
Task = _wire.TaskPublic
Transition = _wire.TransitionPublic
User = _wire.UserPublic
Webhook = _wire.WebhookPublic
WebhookCreated = _wire.WebhookCreated


class Page(ApiModel, Generic[T]):
    """One page of a listing (the api's ``Page_*`` schemas, one generic model here)."""

    data: list[T]
    count: int  # the total of matches, not the length of this page


class JobData(_wire.JobCreated):
    """A job; ``webhook_secret`` only in the answer to a submission with a callback_url."""

    @property
    def finished(self) -> bool:
        """The job has ended and will not change again."""
        return self.status in TERMINAL_STATUSES


# The api's event schemas (StatusEvent, LogEvent, ProgressEvent, EndEvent) are not in its OpenAPI
# document, which describes the stream as text: JobEvent is their union, written here.


class JobEvent(ApiModel):
    """One server-sent event: ``event`` is status, log, progress or end."""

    id: str | None = None
    event: str
    job_id: uuid.UUID | None = None
    attempt: int | None = None
    seq: int | None = None
    status: str | None = None
    at: datetime | None = None
    detail: str | None = None
    lines: list[str] = Field(default_factory=list)
    fraction: float | None = None
    message: str | None = None
    step: str | None = None

    @property
    def is_terminal(self) -> bool:
        """A status event that ends the job (or the end of a job's stream)."""
        return self.event == "end" or (self.event == "status" and self.status in TERMINAL_STATUSES)


# The plugin routes pass the registry's answers through, undescribed in the OpenAPI document.


class PluginSummary(ApiModel):
    name: str
    latest_version: str | None = None
    versions: list[str]


class PluginVersion(ApiModel):
    name: str
    version: str
    sha256: str
    status: str
    module: str
    published_at: datetime
    tasks: dict[str, Any] = Field(default_factory=dict)
