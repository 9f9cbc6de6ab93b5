"""The asynchronous client (httpx.AsyncClient), and the one source of both clients:
``sync.py`` is generated from this module when the client is built (unasync, in
shared/client/hatch_build.py; ``make client-sync`` in a checkout), so the two always offer the
same methods."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import httpx
from pydantic import PrivateAttr

from theodolite.client import calls
from theodolite.client import models as api
from theodolite.client._io import asave, asleep
from theodolite.client.calls import Call, Id
from theodolite.client.credentials import find_key
from theodolite.client.errors import ApiError
from theodolite.client.streaming import (
    RECONNECT_STATUSES,
    StreamState,
    event_headers,
    stream_timeout,
)

T = TypeVar("T")
EventCallback = Callable[[api.JobEvent], None]


class AsyncJob(api.JobData):
    """A job as the api described it, bound to the client that fetched it."""

    _client: AsyncTheodoliteClient | None = PrivateAttr(default=None)

    def _bound(self) -> AsyncTheodoliteClient:
        if self._client is None:
            raise RuntimeError("this job is not bound to a client")
        return self._client

    async def refresh(self) -> AsyncJob:
        return await self._bound().get_job(self.id)

    async def wait(
        self, *, timeout_s: float | None = None, on_event: EventCallback | None = None
    ) -> AsyncJob:
        """Follow the job to its end; ``on_event`` sees every status change, progress report
        and log line as it happens."""
        return await self._bound().wait(self.id, timeout_s=timeout_s, on_event=on_event)

    def events(self, last_event_id: str | None = None) -> AsyncIterator[api.JobEvent]:
        return self._bound().job_events(self.id, last_event_id=last_event_id)

    async def logs(self, tail: int | None = None) -> list[str]:
        return await self._bound().job_logs(self.id, tail=tail)

    async def metrics(self) -> list[api.Metric]:
        return await self._bound().metrics(self.id)

    async def artifacts(self) -> list[api.Artifact]:
        return await self._bound().artifacts(self.id)

    async def download(self, path: str, to: Path | None = None) -> bytes | Path:
        return await self._bound().download_artifact(self.id, path, to=to)

    async def cancel(self) -> AsyncJob:
        return await self._bound().cancel_job(self.id)


class AsyncTheodoliteClient:
    """Every resource of the api; errors raise ApiError with the api's problem list."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 30.0,
        *,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``api_key``: else ``THEODOLITE_API_KEY``, else the config file's key for
        ``base_url`` (``theodolite.client.credentials``)."""
        self.base_url = base_url.rstrip("/")
        key = find_key(self.base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v1",
            timeout=timeout,
            transport=transport,
            headers={} if key is None else {"Authorization": f"Bearer {key}"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTheodoliteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(self, call: Call[T]) -> T:
        """Send one request and read its answer, or raise ApiError."""
        response = await self._http.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            files=call.files,
            headers=call.headers,
        )
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if call.empty:
            return call.read(None)
        if call.content:
            return call.read(response.content)
        return call.read(response.text if call.text else response.json())

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request the client has no method for; the JSON answer as it is."""
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json()

    def _job(self, data: api.JobData) -> AsyncJob:
        job = AsyncJob.model_validate(data.model_dump())
        job._client = self
        return job

    # --- experiments --------------------------------------------------------------------------

    async def create_experiment(self, name: str, description: str | None = None) -> api.Experiment:
        return await self.run(calls.create_experiment(name, description))

    async def list_experiments(self, limit: int = 50, offset: int = 0) -> api.Page[api.Experiment]:
        return await self.run(calls.list_experiments(limit, offset))

    async def get_experiment(self, experiment_id: Id) -> api.Experiment:
        return await self.run(calls.get_experiment(experiment_id))

    async def ensure_experiment(self, name: str, description: str | None = None) -> api.Experiment:
        """The experiment of that name, created when missing."""
        try:
            return await self.create_experiment(name, description)
        except ApiError as exc:
            if exc.status != 409:
                raise
        found = await self._find_experiment(name)
        if found is None:
            raise ApiError(404, {"detail": f"experiment {name!r} vanished"})
        return found

    async def _find_experiment(self, name: str) -> api.Experiment | None:
        """The experiment of that name, if any; the command line resolves names with it too."""
        # The api has no lookup by name: page through the list.
        offset = 0
        while True:
            page = await self.list_experiments(limit=500, offset=offset)
            for experiment in page.data:
                if experiment.name == name:
                    return experiment
            offset += len(page.data)
            if not page.data or offset >= page.count:
                return None

    # --- entry points -------------------------------------------------------------------------

    async def upload_entrypoint(self, source: Path) -> api.EntryPoint:
        """Upload a folder (packed as tar.gz) or an archive file."""
        return await self.run(calls.upload_entrypoint(Path(source)))

    async def upload_archive(
        self, data: bytes, filename: str = "entrypoint.tar.gz"
    ) -> api.EntryPoint:
        return await self.run(calls.upload_archive(data, filename))

    async def validate_entrypoint(self, source: Path) -> dict[str, Any]:
        return await self.run(calls.validate_entrypoint(Path(source)))

    async def list_entrypoints(self, limit: int = 50, offset: int = 0) -> api.Page[api.EntryPoint]:
        return await self.run(calls.list_entrypoints(limit, offset))

    async def get_entrypoint(self, entrypoint_id: Id) -> api.EntryPoint:
        return await self.run(calls.get_entrypoint(entrypoint_id))

    async def entrypoint_archive(self, entrypoint_id: Id) -> bytes:
        """The archive as uploaded."""
        return await self.run(calls.entrypoint_archive(entrypoint_id))

    # --- jobs ---------------------------------------------------------------------------------

    async def submit_job(self, experiment_id: Id, entrypoint_id: Id, **options: Any) -> AsyncJob:
        """Submit a job (options: entry_point, params, queue, timeout_s, max_retries,
        retry_on_failure, retry_backoff_s, callback_url, depends_on, limits, idempotency_key,
        env_manager: local, uv, virtualenv or conda, as ``mlflow run --env-manager``)."""
        return self._job(await self.run(calls.submit_job(experiment_id, entrypoint_id, **options)))

    async def get_job(self, job_id: Id) -> AsyncJob:
        return self._job(await self.run(calls.get_job(job_id)))

    async def list_jobs(
        self,
        experiment_id: Id | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> api.Page[AsyncJob]:
        page = await self.run(calls.list_jobs(experiment_id, status, limit, offset))
        return api.Page[AsyncJob](data=[self._job(j) for j in page.data], count=page.count)

    async def cancel_job(self, job_id: Id) -> AsyncJob:
        return self._job(await self.run(calls.cancel_job(job_id)))

    async def job_logs(self, job_id: Id, tail: int | None = None) -> list[str]:
        return await self.run(calls.job_logs(job_id, tail))

    async def metrics(self, job_id: Id) -> list[api.Metric]:
        return await self.run(calls.job_metrics(job_id))

    async def artifacts(self, job_id: Id) -> list[api.Artifact]:
        return await self.run(calls.job_artifacts(job_id))

    async def download_artifact(
        self, job_id: Id, path: str, to: Path | None = None
    ) -> bytes | Path:
        """An artifact's bytes, or written to ``to`` (a file, or a folder to put it in)."""
        async with self._http.stream("GET", calls.artifact_path(job_id, path)) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError.from_response(response)
            if to is None:
                return await response.aread()
            return await asave(Path(to), PurePosixPath(path).name, response.aiter_bytes())

    def job_events(
        self, job_id: Id, *, last_event_id: str | None = None, timeout_s: float | None = None
    ) -> AsyncIterator[api.JobEvent]:
        """The job's events from after ``last_event_id`` (from its start without) to its end,
        reconnecting with Last-Event-ID whenever the connection drops."""
        return self._events(f"/jobs/{job_id}/events", last_event_id, timeout_s, until_end=True)

    def experiment_events(
        self,
        experiment_id: Id,
        *,
        last_event_id: str | None = None,
        from_now: bool = False,
        timeout_s: float | None = None,
    ) -> AsyncIterator[api.JobEvent]:
        """Status changes and progress of the experiment's jobs; never ends by itself."""
        params = {"from_now": "true"} if from_now else None
        return self._events(
            f"/experiments/{experiment_id}/events", last_event_id, timeout_s, params=params
        )

    async def _events(
        self,
        path: str,
        last_event_id: str | None,
        timeout_s: float | None,
        *,
        until_end: bool = False,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[api.JobEvent]:
        state = StreamState(last_event_id=last_event_id, timeout_s=timeout_s)
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    path,
                    params=params,
                    headers=event_headers(state),
                    timeout=stream_timeout(state),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code not in RECONNECT_STATUSES:
                            raise ApiError.from_response(response)
                    else:
                        state.connected()
                        async for line in response.aiter_lines():
                            event = state.feed(line)
                            if event is not None:
                                yield event
                                if until_end and event.event == "end":
                                    return
                            state.check_deadline()
            except httpx.TransportError:
                pass  # dropped, timed out between pings, refused: reconnect
            await asleep(state.reconnect_delay())

    async def wait(
        self,
        job_id: Id,
        *,
        timeout_s: float | None = None,
        on_event: EventCallback | None = None,
        on_change: Callable[[AsyncJob], None] | None = None,
        poll_s: float | None = None,  # accepted for older callers: waiting follows the events
    ) -> AsyncJob:
        """Follow the job's events to its end and return it; ``on_event`` sees each event,
        ``on_change`` the job after each status change. TimeoutError after ``timeout_s``."""
        async for event in self.job_events(job_id, timeout_s=timeout_s):
            if on_event is not None:
                on_event(event)
            if on_change is not None and event.event == "status":
                on_change(await self.get_job(job_id))
        return await self.get_job(job_id)

    # --- queues, tasks, plugins, models -------------------------------------------------------

    async def queues(self) -> list[api.Queue]:
        return await self.run(calls.list_queues())

    async def get_queue(self, name: str) -> api.Queue:
        return await self.run(calls.get_queue(name))

    async def create_queue(self, name: str, description: str | None = None) -> api.Queue:
        return await self.run(calls.create_queue(name, description))

    async def tasks(self) -> list[api.Task]:
        return await self.run(calls.list_tasks())

    async def push_plugin(self, source: Path) -> api.PluginVersion:
        """Publish a plugin folder (packed), wheel or source archive through the registry."""
        return await self.run(calls.push_plugin(Path(source)))

    async def plugins(self) -> list[api.PluginSummary]:
        return await self.run(calls.list_plugins())

    async def plugin_versions(self, name: str) -> list[api.PluginVersion]:
        return await self.run(calls.plugin_versions(name))

    async def plugin_version(self, name: str, version: str) -> api.PluginVersion:
        """One version with its tasks' input and output schemas."""
        return await self.run(calls.plugin_version(name, version))

    async def yank_plugin(self, name: str, version: str) -> api.PluginVersion:
        return await self.run(calls.yank_plugin(name, version))

    async def models(self) -> list[api.RegisteredModel]:
        return await self.run(calls.list_models())

    async def model_versions(self, name: str) -> list[api.ModelVersion]:
        return await self.run(calls.model_versions(name))

    # --- webhooks -----------------------------------------------------------------------------

    async def create_webhook(
        self,
        experiment_id: Id,
        url: str,
        event_types: list[str] | None = None,
        description: str | None = None,
    ) -> api.WebhookCreated:
        return await self.run(calls.create_webhook(experiment_id, url, event_types, description))

    async def webhooks(self, experiment_id: Id) -> list[api.Webhook]:
        return await self.run(calls.list_webhooks(experiment_id))

    async def get_webhook(self, experiment_id: Id, webhook_id: Id) -> api.Webhook:
        return await self.run(calls.get_webhook(experiment_id, webhook_id))

    async def update_webhook(
        self, experiment_id: Id, webhook_id: Id, **changes: Any
    ) -> api.Webhook:
        """Change url, event_types, description or enabled."""
        return await self.run(calls.update_webhook(experiment_id, webhook_id, **changes))

    async def delete_webhook(self, experiment_id: Id, webhook_id: Id) -> None:
        await self.run(calls.delete_webhook(experiment_id, webhook_id))

    async def deliveries(
        self, experiment_id: Id, webhook_id: Id, status: str | None = None, **paging: Any
    ) -> api.Page[api.Delivery]:
        return await self.run(calls.list_deliveries(experiment_id, webhook_id, status, **paging))

    async def redeliver(self, experiment_id: Id, webhook_id: Id, delivery_id: Id) -> api.Delivery:
        return await self.run(calls.redeliver(experiment_id, webhook_id, delivery_id))

    async def callback_deliveries(
        self, job_id: Id, status: str | None = None
    ) -> api.Page[api.Delivery]:
        return await self.run(calls.callback_deliveries(job_id, status))

    # --- sweeps -------------------------------------------------------------------------------

    async def submit_sweep(
        self, experiment_id: Id, entrypoint_id: Id, grid: dict[str, list[Any]], **options: Any
    ) -> api.Sweep:
        """Submit one job per point (options: params, seeds, seed_param, repeats, metrics,
        entry_point, queue, name, timeout_s)."""
        return await self.run(calls.submit_sweep(experiment_id, entrypoint_id, grid, **options))

    async def get_sweep(self, sweep_id: Id, *, with_metrics: bool = True) -> api.Sweep:
        return await self.run(calls.get_sweep(sweep_id, with_metrics=with_metrics))

    async def list_sweeps(
        self, experiment_id: Id | None = None, limit: int = 50, offset: int = 0
    ) -> api.Page[api.SweepSummary]:
        return await self.run(calls.list_sweeps(experiment_id, limit, offset))

    async def sweep_figure(
        self, sweep_id: Id, metric: str | None = None, x: str | None = None
    ) -> str:
        """The finished sweep's figure, an SVG document."""
        return await self.run(calls.sweep_figure(sweep_id, metric, x))

    async def wait_sweep(
        self,
        sweep_id: Id,
        *,
        timeout_s: float | None = None,
        poll_s: float = 2.0,
        on_change: Callable[[api.Sweep], None] | None = None,
    ) -> api.Sweep:
        """Poll until every job of the sweep has ended; the sweep with its metrics."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen: dict[str, int] | None = None
        while True:
            sweep = await self.get_sweep(sweep_id, with_metrics=False)
            if sweep.counts != seen:
                seen = sweep.counts
                if on_change is not None:
                    on_change(sweep)
            if sweep.finished:
                return await self.get_sweep(sweep_id)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} still {sweep.status} after {timeout_s} s")
            await asleep(poll_s)

    # --- pipelines ----------------------------------------------------------------------------

    async def submit_pipeline(self, spec: Any) -> api.Pipeline:
        """Submit a pipeline: a dict (or model) shaped as the api's PipelineCreate
        (experiment_id, name, stages: name -> entrypoint_id, params, depends_on, sweep, ...)."""
        return await self.run(calls.submit_pipeline(spec))

    async def get_pipeline(self, pipeline_id: Id) -> api.Pipeline:
        return await self.run(calls.get_pipeline(pipeline_id))

    async def list_pipelines(
        self, experiment_id: Id | None = None, limit: int = 50, offset: int = 0
    ) -> api.Page[api.PipelineSummary]:
        return await self.run(calls.list_pipelines(experiment_id, limit, offset))

    async def cancel_pipeline(self, pipeline_id: Id) -> api.Pipeline:
        """Cancel every stage not yet ended; 409 when the pipeline has ended."""
        return await self.run(calls.cancel_pipeline(pipeline_id))

    async def wait_pipeline(
        self,
        pipeline_id: Id,
        *,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        on_change: Callable[[api.Pipeline], None] | None = None,
    ) -> api.Pipeline:
        """Poll until the pipeline has ended and return it; ``on_change`` sees it whenever its
        status, a stage's status or a stage's jobs changed. TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen: object = None
        while True:
            pipeline = await self.get_pipeline(pipeline_id)
            # What a watcher sees: the statuses and the jobs (updated_at moves with no change).
            state = (pipeline.status, [stage.model_dump(mode="json") for stage in pipeline.stages])
            if state != seen:
                seen = state
                if on_change is not None:
                    on_change(pipeline)
            if pipeline.finished:
                return pipeline
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"pipeline {pipeline_id} still {pipeline.status} after {timeout_s} s"
                )
            await asleep(poll_s)

    # --- identity --------------------------------------------------------------------------------

    async def whoami(self) -> api.Caller:
        """The caller: user, groups with roles, the key's scopes."""
        return await self.run(calls.whoami())

    async def create_user(self, name: str, is_admin: bool = False) -> api.User:
        return await self.run(calls.create_user(name, is_admin))

    async def list_users(self) -> api.Page[api.User]:
        return await self.run(calls.list_users())

    async def create_group(self, name: str, description: str | None = None) -> api.Group:
        return await self.run(calls.create_group(name, description))

    async def list_groups(self) -> api.Page[api.Group]:
        return await self.run(calls.list_groups())

    async def set_member(self, group: str, user: str, role: str = "member") -> api.Member:
        """Put ``user`` in ``group`` as admin, member or viewer."""
        return await self.run(calls.set_member(group, user, role))

    async def list_members(self, group: str) -> api.Page[api.Member]:
        return await self.run(calls.list_members(group))

    async def create_key(
        self, user: str, name: str, scopes: list[str], expires_in_days: float | None = 90
    ) -> api.ApiKeyCreated:
        """A new key for ``user``; its ``key`` is in this answer only."""
        return await self.run(calls.create_key(user, name, scopes, expires_in_days))

    async def list_keys(self, user: str | None = None) -> api.Page[api.ApiKey]:
        return await self.run(calls.list_keys(user))

    async def revoke_key(self, key_id: Id) -> api.ApiKey:
        return await self.run(calls.revoke_key(key_id))
