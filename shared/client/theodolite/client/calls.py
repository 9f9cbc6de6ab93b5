"""Every request of the API once: method, path, body and how to read the answer. The sync and
async clients only run these (sans-I/O), so the two never drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from theodolite.client import models as api
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


def _page(path: str, model: type[T], **params: Any) -> Call[api.Page[T]]:
    """A page of a listing, its items read as ``model``; ``params`` filter and page it."""
    return Call("GET", path, _model(api.Page[model]), params=_given(**params))  # type: ignore[valid-type]


def _given(**values: Any) -> dict[str, Any]:
    """The values given (None is left out), ids as text: a query's parameters or a JSON body."""
    return {
        k: str(v) if isinstance(v, uuid.UUID) else v for k, v in values.items() if v is not None
    }


def _submission(
    experiment_id: Id,
    entrypoint_id: Id,
    entry_point: str,
    params: dict[str, Any] | None,
    queue: str,
    timeout_s: int | None,
) -> dict[str, Any]:
    """What the body of a job's and of a sweep's submission both say: what runs where."""
    return _given(
        experiment_id=experiment_id,
        entrypoint_id=entrypoint_id,
        entry_point=entry_point,
        params=params or {},
        queue=queue,
        timeout_s=timeout_s,
    )


# --- experiments -------------------------------------------------------------------------------


def create_experiment(name: str, description: str | None = None) -> Call[api.Experiment]:
    return Call(
        "POST",
        "/experiments",
        _model(api.Experiment),
        json=_given(name=name, description=description),
    )


def list_experiments(limit: int = 50, offset: int = 0) -> Call[api.Page[api.Experiment]]:
    return _page("/experiments", api.Experiment, limit=limit, offset=offset)


def get_experiment(experiment_id: Id) -> Call[api.Experiment]:
    return Call("GET", f"/experiments/{experiment_id}", _model(api.Experiment))


# --- entry points ------------------------------------------------------------------------------


def upload_archive(data: bytes, filename: str = "entrypoint.tar.gz") -> Call[api.EntryPoint]:
    return Call("POST", "/entrypoints", _model(api.EntryPoint), files={"archive": (filename, data)})


def upload_entrypoint(source: Path) -> Call[api.EntryPoint]:
    """A folder (packed as tar.gz) or an archive file."""
    data, filename = archive_of(source)
    return upload_archive(data, filename)


def validate_entrypoint(source: Path) -> Call[dict[str, Any]]:
    data, filename = archive_of(source)
    return Call("POST", "/entrypoints/validate", dict, files={"archive": (filename, data)})


def list_entrypoints(limit: int = 50, offset: int = 0) -> Call[api.Page[api.EntryPoint]]:
    return _page("/entrypoints", api.EntryPoint, limit=limit, offset=offset)


def get_entrypoint(entrypoint_id: Id) -> Call[api.EntryPoint]:
    return Call("GET", f"/entrypoints/{entrypoint_id}", _model(api.EntryPoint))


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
    depends_on: list[Id] | None = None,
    limits: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    env_manager: str | None = None,
) -> Call[api.JobData]:
    body = _submission(experiment_id, entrypoint_id, entry_point, params, queue, timeout_s)
    body |= _given(
        max_retries=max_retries,
        retry_on_failure=retry_on_failure,
        retry_backoff_s=retry_backoff_s,
        callback_url=callback_url,
        depends_on=[str(job_id) for job_id in depends_on] if depends_on else None,
        limits=limits,
        env_manager=env_manager,
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return Call("POST", "/jobs", _model(api.JobData), json=body, headers=headers)


def get_job(job_id: Id) -> Call[api.JobData]:
    return Call("GET", f"/jobs/{job_id}", _model(api.JobData))


def list_jobs(
    experiment_id: Id | None = None, status: str | None = None, limit: int = 50, offset: int = 0
) -> Call[api.Page[api.JobData]]:
    return _page(
        "/jobs", api.JobData, experiment_id=experiment_id, status=status, limit=limit, offset=offset
    )


def cancel_job(job_id: Id) -> Call[api.JobData]:
    return Call("POST", f"/jobs/{job_id}/cancel", _model(api.JobData))


def job_logs(job_id: Id, tail: int | None = None) -> Call[list[str]]:
    return Call(
        "GET",
        f"/jobs/{job_id}/logs",
        lambda text: text.splitlines(),
        params=_given(tail=tail),
        text=True,
    )


def job_metrics(job_id: Id) -> Call[list[api.Metric]]:
    return Call("GET", f"/jobs/{job_id}/metrics", _data(api.Metric))


def job_artifacts(job_id: Id) -> Call[list[api.Artifact]]:
    return Call("GET", f"/jobs/{job_id}/artifacts", _data(api.Artifact))


def artifact_path(job_id: Id, path: str) -> str:
    return f"/jobs/{job_id}/artifacts/{path.lstrip('/')}"


# --- queues, tasks, plugins, models ------------------------------------------------------------


def list_queues() -> Call[list[api.Queue]]:
    return Call("GET", "/queues", _data(api.Queue))


def get_queue(name: str) -> Call[api.Queue]:
    """One queue, with its dead letters (extra fields of the answer)."""
    return Call("GET", f"/queues/{name}", _model(api.Queue))


def create_queue(name: str, description: str | None = None) -> Call[api.Queue]:
    return Call(
        "POST", "/queues", _model(api.Queue), json=_given(name=name, description=description)
    )


def list_tasks() -> Call[list[api.Task]]:
    return Call("GET", "/tasks", _data(api.Task))


def push_plugin(source: Path) -> Call[api.PluginVersion]:
    """A plugin folder (packed as a source archive), a wheel or a source archive."""
    data, filename = archive_of(source)
    return Call("POST", "/plugins", _model(api.PluginVersion), files={"archive": (filename, data)})


def list_plugins() -> Call[list[api.PluginSummary]]:
    return Call("GET", "/plugins", _data(api.PluginSummary))


def plugin_versions(name: str) -> Call[list[api.PluginVersion]]:
    return Call("GET", f"/plugins/{name}", _data(api.PluginVersion))


def plugin_version(name: str, version: str) -> Call[api.PluginVersion]:
    return Call("GET", f"/plugins/{name}/{version}", _model(api.PluginVersion))


def yank_plugin(name: str, version: str) -> Call[api.PluginVersion]:
    return Call("POST", f"/plugins/{name}/{version}/yank", _model(api.PluginVersion))


def list_models() -> Call[list[api.RegisteredModel]]:
    return Call("GET", "/models", _data(api.RegisteredModel), params={"limit": 500})


def model_versions(name: str) -> Call[list[api.ModelVersion]]:
    return Call("GET", f"/models/{name}/versions", _data(api.ModelVersion))


# --- webhooks ----------------------------------------------------------------------------------


def _webhooks(experiment_id: Id) -> str:
    return f"/experiments/{experiment_id}/webhooks"


def create_webhook(
    experiment_id: Id,
    url: str,
    event_types: list[str] | None = None,
    description: str | None = None,
) -> Call[api.WebhookCreated]:
    body = _given(url=url, event_types=event_types, description=description)
    return Call("POST", _webhooks(experiment_id), _model(api.WebhookCreated), json=body)


def list_webhooks(experiment_id: Id) -> Call[list[api.Webhook]]:
    return Call("GET", _webhooks(experiment_id), _data(api.Webhook), params={"limit": 500})


def get_webhook(experiment_id: Id, webhook_id: Id) -> Call[api.Webhook]:
    return Call("GET", f"{_webhooks(experiment_id)}/{webhook_id}", _model(api.Webhook))


def update_webhook(experiment_id: Id, webhook_id: Id, **changes: Any) -> Call[api.Webhook]:
    return Call(
        "PATCH",
        f"{_webhooks(experiment_id)}/{webhook_id}",
        _model(api.Webhook),
        json=_given(**changes),
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
) -> Call[api.Page[api.Delivery]]:
    return _page(
        f"{_webhooks(experiment_id)}/{webhook_id}/deliveries",
        api.Delivery,
        status=status,
        job_id=job_id,
        limit=limit,
        offset=offset,
    )


def redeliver(experiment_id: Id, webhook_id: Id, delivery_id: Id) -> Call[api.Delivery]:
    path = f"{_webhooks(experiment_id)}/{webhook_id}/deliveries/{delivery_id}/redeliver"
    return Call("POST", path, _model(api.Delivery))


def callback_deliveries(job_id: Id, status: str | None = None) -> Call[api.Page[api.Delivery]]:
    return _page(f"/jobs/{job_id}/callback/deliveries", api.Delivery, status=status, limit=500)


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
) -> Call[api.Sweep]:
    body = _submission(experiment_id, entrypoint_id, entry_point, params, queue, timeout_s)
    body |= _given(
        grid=grid,
        seeds=seeds or [],
        seed_param=seed_param,
        repeats=repeats,
        metrics=metrics or [],
        name=name,
    )
    return Call("POST", "/sweeps", _model(api.Sweep), json=body)


def get_sweep(sweep_id: Id, with_metrics: bool = True) -> Call[api.Sweep]:
    params = None if with_metrics else {"metrics": "false"}
    return Call("GET", f"/sweeps/{sweep_id}", _model(api.Sweep), params=params)


def list_sweeps(
    experiment_id: Id | None = None, limit: int = 50, offset: int = 0
) -> Call[api.Page[api.SweepSummary]]:
    return _page(
        "/sweeps", api.SweepSummary, experiment_id=experiment_id, limit=limit, offset=offset
    )


def sweep_figure(sweep_id: Id, metric: str | None = None, x: str | None = None) -> Call[str]:
    return Call(
        "GET",
        f"/sweeps/{sweep_id}/figure.svg",
        str,
        params=_given(metric=metric, x=x),
        text=True,
    )


# --- pipelines ---------------------------------------------------------------------------------


def submit_pipeline(spec: Any) -> Call[api.Pipeline]:
    """A pipeline: the api's PipelineCreate body, as a dict or a model (ids may be UUIDs)."""
    # to_jsonable_python turns a model, UUIDs and anything nested in a dict into plain JSON.
    return Call("POST", "/pipelines", _model(api.Pipeline), json=to_jsonable_python(spec))


def get_pipeline(pipeline_id: Id) -> Call[api.Pipeline]:
    return Call("GET", f"/pipelines/{pipeline_id}", _model(api.Pipeline))


def list_pipelines(
    experiment_id: Id | None = None, limit: int = 50, offset: int = 0
) -> Call[api.Page[api.PipelineSummary]]:
    return _page(
        "/pipelines", api.PipelineSummary, experiment_id=experiment_id, limit=limit, offset=offset
    )


def cancel_pipeline(pipeline_id: Id) -> Call[api.Pipeline]:
    return Call("POST", f"/pipelines/{pipeline_id}/cancel", _model(api.Pipeline))


# --- identity ------------------------------------------------------------------------------------


def whoami() -> Call[api.Caller]:
    return Call("GET", "/me", _model(api.Caller))


def create_user(name: str, is_admin: bool = False) -> Call[api.User]:
    return Call("POST", "/admin/users", _model(api.User), json=_given(name=name, is_admin=is_admin))


def list_users() -> Call[api.Page[api.User]]:
    return _page("/admin/users", api.User)


def create_group(name: str, description: str | None = None) -> Call[api.Group]:
    body = _given(name=name, description=description)
    return Call("POST", "/admin/groups", _model(api.Group), json=body)


def list_groups() -> Call[api.Page[api.Group]]:
    return _page("/admin/groups", api.Group)


def set_member(group: str, user: str, role: str) -> Call[api.Member]:
    path = f"/admin/groups/{quote(group, safe='')}/members/{quote(user, safe='')}"
    return Call("PUT", path, _model(api.Member), json={"role": role})


def list_members(group: str) -> Call[api.Page[api.Member]]:
    return _page(f"/admin/groups/{quote(group, safe='')}/members", api.Member)


def create_key(
    user: str, name: str, scopes: list[str], expires_in_days: float | None = 90
) -> Call[api.ApiKeyCreated]:
    body = {"user": user, "name": name, "scopes": scopes, "expires_in_days": expires_in_days}
    return Call("POST", "/admin/keys", _model(api.ApiKeyCreated), json=body)


def list_keys(user: str | None = None) -> Call[api.Page[api.ApiKey]]:
    return _page("/admin/keys", api.ApiKey, user=user)


def revoke_key(key_id: Id) -> Call[api.ApiKey]:
    return Call("POST", f"/admin/keys/{key_id}/revoke", _model(api.ApiKey))
