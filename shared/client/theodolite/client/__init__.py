"""Python clients of the Theodolite api: ``TheodoliteClient`` (sync, httpx.Client) and
``AsyncTheodoliteClient`` (httpx.AsyncClient), with typed models, ApiError carrying the api's
problem list, ``job.wait()``, event streams that reconnect with Last-Event-ID, artifact download
and entry point upload from a folder (``pack_folder``)."""

from theodolite.client.aio import AsyncJob, AsyncTheodoliteClient
from theodolite.client.errors import ApiError
from theodolite.client.models import (
    Artifact,
    Delivery,
    EntryPoint,
    Experiment,
    JobData,
    JobEvent,
    Metric,
    Page,
    Pipeline,
    PipelineSummary,
    PluginSummary,
    PluginVersion,
    Queue,
    Sweep,
    SweepSummary,
    Task,
    Webhook,
    WebhookCreated,
)
from theodolite.client.packing import pack_folder
from theodolite.client.sync import Job, TheodoliteClient

__all__ = [
    "ApiError",
    "Artifact",
    "AsyncJob",
    "AsyncTheodoliteClient",
    "Delivery",
    "EntryPoint",
    "Experiment",
    "Job",
    "JobData",
    "JobEvent",
    "Metric",
    "Page",
    "Pipeline",
    "PipelineSummary",
    "PluginSummary",
    "PluginVersion",
    "Queue",
    "Sweep",
    "SweepSummary",
    "Task",
    "TheodoliteClient",
    "Webhook",
    "WebhookCreated",
    "pack_folder",
]
