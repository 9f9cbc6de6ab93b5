"""Every request of the API once: method, path, body and how to read the answer. The sync and
async clients only run these (sans-I/O), so the two never drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from theodolite.client.models import (
    Artifact,
    Delivery,
    EntryPoint,
    Experiment,
    JobData,
    Metric,
    ModelVersion,
    Page,
    PluginSummary,
    PluginVersion,
    Queue,
    RegisteredModel,
    Sweep,
    SweepSummary,
    Task,
    Webhook,
    WebhookCreated,
)
from theodolite.client.packing import archive_of

T = TypeVar("T")
Id = uuid.UUID | str


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]  # the JSON answer (or its text, with ``text``) to a value
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, tuple[str, bytes]] | None = None
    headers: dict[str, str] | None = None
    text: bool = False
    content: bool = False  # the answer is bytes (a download)
    empty: bool = False  # the answer has no body (204)


def _model(model: type[T]) -> Callable[[Any], T]:
    adapter = TypeAdapter(model)
    return adapter.validate_python


def _data(model: type[T]) -> Callable[[Any], list[T]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda body: adapter.validate_python(body["data"])


def _params(**values: Any) -> dict[str, Any]:
    return {
        k: str(v) if isinstance(v, uuid.UUID) else v for k, v in values.items() if v is not None
    }


def _body(**values: Any) -> dict[str, Any]:
    return {
        k: str(v) if isinstance(v, uuid.UUID) else v for k, v in values.items() if v is not None
    }


# --- experiments -------------------------------------------------------------------------------


def create_experiment(name: str, description: str | None = None) -> Call[Experiment]:
    return Call(
        "POST", "/experiments", _model(Experiment), json=_body(name=name, description=description)
    )


def list_experiments(limit: int = 50, offset: int = 0) -> Call[Page[Experiment]]:
    return Call(
        "GET", "/experiments", _model(Page[Experiment]), params=_params(limit=limit, offset=offset)
    )


def get_experiment(experiment_id: Id) -> Call[Experiment]:
    return Call("GET", f"/experiments/{experiment_id}", _model(Experiment))


# --- entry points ------------------------------------------------------------------------------


def upload_archive(data: bytes, filename: str = "entrypoint.tar.gz") -> Call[EntryPoint]:
    return Call("POST", "/entrypoints", _model(EntryPoint), files={"archive": (filename, data)})


def upload_entrypoint(source: Path) -> Call[EntryPoint]:
    """A folder (packed as tar.gz) or an archive file."""
    data, filename = archive_of(source)
    return upload_archive(data, filename)


def validate_entrypoint(source: Path) -> Call[dict[str, Any]]:
    data, filename = archive_of(source)
    return Call("POST", "/entrypoints/validate", dict, files={"archive": (filename, data)})


def list_entrypoints(limit: int = 50, offset: int = 0) -> Call[Page[EntryPoint]]:
    return Call(
        "GET", "/entrypoints", _model(Page[EntryPoint]), params=_params(limit=limit, offset=offset)
    )


def get_entrypoint(entrypoint_id: Id) -> Call[EntryPoint]:
    return Call("GET", f"/entrypoints/{entrypoint_id}", _model(EntryPoint))


def entrypoint_archive(entrypoint_id: Id) -> Call[bytes]:
    return Call("GET", f"/entrypoints/{entrypoint_id}/archive", bytes, content=True)


# --- jobs --------------------------------------------------------------------------------------


def submit_job(
    experiment_id: Id,
    entrypoint_id: Id,
    *,
    entry_point: str = "main",
    params: dict[str, Any] | None = None,
    queue: str = "cpu",
    timeout_s: int | None = None,
    max_retries: int | None = None,
    retry_on_failure: bool | None = None,
    retry_backoff_s: float | None = None,
    callback_url: str | None = None,
    idempotency_key: str | None = None,
) -> Call[JobData]:
    body = _body(
        experiment_id=experiment_id,
        entrypoint_id=entrypoint_id,
        entry_point=entry_point,
        params=params or {},
        queue=queue,
        timeout_s=timeout_s,
        max_retries=max_retries,
        retry_on_failure=retry_on_failure,
        retry_backoff_s=retry_backoff_s,
        callback_url=callback_url,
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return Call("POST", "/jobs", _model(JobData), json=body, headers=headers)


def get_job(job_id: Id) -> Call[JobData]:
    return Call("GET", f"/jobs/{job_id}", _model(JobData))


def list_jobs(
    experiment_id: Id | None = None, status: str | None = None, limit: int = 50, offset: int = 0
) -> Call[Page[JobData]]:
    return Call(
        "GET",
        "/jobs",
        _model(Page[JobData]),
        params=_params(experiment_id=experiment_id, status=status, limit=limit, offset=offset),
    )


def cancel_job(job_id: Id) -> Call[JobData]:
    return Call("POST", f"/jobs/{job_id}/cancel", _model(JobData))


def job_logs(job_id: Id, tail: int | None = None) -> Call[list[str]]:
    return Call(
        "GET",
        f"/jobs/{job_id}/logs",
        lambda text: text.splitlines(),
        params=_params(tail=tail),
        text=True,
    )


def job_metrics(job_id: Id) -> Call[list[Metric]]:
    return Call("GET", f"/jobs/{job_id}/metrics", _data(Metric))


def job_artifacts(job_id: Id) -> Call[list[Artifact]]:
    return Call("GET", f"/jobs/{job_id}/artifacts", _data(Artifact))


def artifact_path(job_id: Id, path: str) -> str:
    return f"/jobs/{job_id}/artifacts/{path.lstrip('/')}"


# --- queues, tasks, plugins, models ------------------------------------------------------------


def list_queues() -> Call[list[Queue]]:
    return Call("GET", "/queues", _data(Queue))


def get_queue(name: str) -> Call[Queue]:
    """One queue, with its dead letters (extra fields of the answer)."""
    return Call("GET", f"/queues/{name}", _model(Queue))


def create_queue(name: str, description: str | None = None) -> Call[Queue]:
    return Call("POST", "/queues", _model(Queue), json=_body(name=name, description=description))


def list_tasks() -> Call[list[Task]]:
    return Call("GET", "/tasks", _data(Task))


def push_plugin(source: Path) -> Call[PluginVersion]:
    """A plugin folder (packed as a source archive), a wheel or a source archive."""
    data, filename = archive_of(source)
    return Call("POST", "/plugins", _model(PluginVersion), files={"archive": (filename, data)})


def list_plugins() -> Call[list[PluginSummary]]:
    return Call("GET", "/plugins", _data(PluginSummary))


def plugin_versions(name: str) -> Call[list[PluginVersion]]:
    return Call("GET", f"/plugins/{name}", _data(PluginVersion))


def plugin_version(name: str, version: str) -> Call[PluginVersion]:
    return Call("GET", f"/plugins/{name}/{version}", _model(PluginVersion))


def yank_plugin(name: str, version: str) -> Call[PluginVersion]:
    return Call("POST", f"/plugins/{name}/{version}/yank", _model(PluginVersion))


def list_models() -> Call[list[RegisteredModel]]:
    return Call("GET", "/models", _data(RegisteredModel), params={"limit": 500})


def model_versions(name: str) -> Call[list[ModelVersion]]:
    return Call("GET", f"/models/{name}/versions", _data(ModelVersion))


# --- webhooks ----------------------------------------------------------------------------------


def _webhooks(experiment_id: Id) -> str:
    return f"/experiments/{experiment_id}/webhooks"


def create_webhook(
    experiment_id: Id,
    url: str,
    event_types: list[str] | None = None,
    description: str | None = None,
) -> Call[WebhookCreated]:
    body = _body(url=url, event_types=event_types, description=description)
    return Call("POST", _webhooks(experiment_id), _model(WebhookCreated), json=body)


def list_webhooks(experiment_id: Id) -> Call[list[Webhook]]:
    return Call("GET", _webhooks(experiment_id), _data(Webhook), params={"limit": 500})


def get_webhook(experiment_id: Id, webhook_id: Id) -> Call[Webhook]:
    return Call("GET", f"{_webhooks(experiment_id)}/{webhook_id}", _model(Webhook))


def update_webhook(experiment_id: Id, webhook_id: Id, **changes: Any) -> Call[Webhook]:
    return Call(
        "PATCH", f"{_webhooks(experiment_id)}/{webhook_id}", _model(Webhook), json=_body(**changes)
    )


def delete_webhook(experiment_id: Id, webhook_id: Id) -> Call[None]:
    return Call("DELETE", f"{_webhooks(experiment_id)}/{webhook_id}", lambda _: None, empty=True)


def list_deliveries(
    experiment_id: Id,
    webhook_id: Id,
    status: str | None = None,
    job_id: Id | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Call[Page[Delivery]]:
    return Call(
        "GET",
        f"{_webhooks(experiment_id)}/{webhook_id}/deliveries",
        _model(Page[Delivery]),
        params=_params(status=status, job_id=job_id, limit=limit, offset=offset),
    )


def redeliver(experiment_id: Id, webhook_id: Id, delivery_id: Id) -> Call[Delivery]:
    path = f"{_webhooks(experiment_id)}/{webhook_id}/deliveries/{delivery_id}/redeliver"
    return Call("POST", path, _model(Delivery))


def callback_deliveries(job_id: Id, status: str | None = None) -> Call[Page[Delivery]]:
    return Call(
        "GET",
        f"/jobs/{job_id}/callback/deliveries",
        _model(Page[Delivery]),
        params=_params(status=status, limit=500),
    )


# --- sweeps ------------------------------------------------------------------------------------


def submit_sweep(
    experiment_id: Id,
    entrypoint_id: Id,
    grid: dict[str, list[Any]],
    *,
    params: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    seed_param: str = "seed",
    repeats: int = 1,
    metrics: list[str] | None = None,
    entry_point: str = "main",
    queue: str = "cpu",
    name: str | None = None,
    timeout_s: int | None = None,
) -> Call[Sweep]:
    body = _body(
        experiment_id=experiment_id,
        entrypoint_id=entrypoint_id,
        grid=grid,
        params=params or {},
        seeds=seeds or [],
        seed_param=seed_param,
        repeats=repeats,
        metrics=metrics or [],
        entry_point=entry_point,
        queue=queue,
        name=name,
        timeout_s=timeout_s,
    )
    return Call("POST", "/sweeps", _model(Sweep), json=body)


def get_sweep(sweep_id: Id, with_metrics: bool = True) -> Call[Sweep]:
    params = None if with_metrics else {"metrics": "false"}
    return Call("GET", f"/sweeps/{sweep_id}", _model(Sweep), params=params)


def list_sweeps(
    experiment_id: Id | None = None, limit: int = 50, offset: int = 0
) -> Call[Page[SweepSummary]]:
    return Call(
        "GET",
        "/sweeps",
        _model(Page[SweepSummary]),
        params=_params(experiment_id=experiment_id, limit=limit, offset=offset),
    )


def sweep_figure(sweep_id: Id, metric: str | None = None, x: str | None = None) -> Call[str]:
    return Call(
        "GET",
        f"/sweeps/{sweep_id}/figure.svg",
        str,
        params=_params(metric=metric, x=x),
        text=True,
    )
