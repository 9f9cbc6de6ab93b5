"""The worker's MLflow proxy for one job: a unix socket in the job's folder, forwarding to the
real tracking server what the job's scope allows (``rules``) and refusing the rest with an
MLflow-style 403 that names the rule.

Use from the worker (``jobs.py``)::

    async with job_tracking_proxy(
        socket_path=job_dir / ".theodolite" / "mlflow.sock",
        upstream=settings.mlflow.tracking_uri,
        run_id=run_id,
        experiment_id=job.mlflow_experiment_id,
    ) as proxy:
        # inside the sandbox (the job folder is bind-mounted, so the socket is visible at the
        # same or a re-mapped path), the job talks to 127.0.0.1 through the forwarder:
        #   warm child: sandbox_entry.fork_forwards (a forwarding process of its own)
        #   cold job: python -m theodolite_worker.sandbox_entry --forward 0,ENV,,S -- CMD
        ...run the job; the proxy stops (and its socket goes) when the block ends...
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import aiohttp
from aiohttp import web

from theodolite_worker.tracking_proxy.rules import TrackingRequest, TrackingRules, is_streamed
from theodolite_worker.tracking_proxy.scope import Forward, JobScope, Refusal, invalid
from theodolite_worker.tracking_proxy.upstream import (
    TrackingProxyError,
    Upstream,
    worker_credentials,
)

log = logging.getLogger(__name__)

# A JSON call's body (log-batch is at most 1000 metrics, 100 params, 100 tags: well under this).
MAX_JSON_BODY = 8 * 1024 * 1024
_UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, NUL included
_REQUEST_HEADERS = ("Content-Type", "Content-Length", "Accept", "Accept-Encoding", "User-Agent")
_RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Content-Disposition",
    "Last-Modified",
    "ETag",
)
_STREAM_CHUNK = 256 * 1024


@dataclass
class TrackingProxy:
    """A running proxy: where it listens, and the scope it enforces."""

    socket_path: Path
    rules: TrackingRules

    @property
    def scope(self) -> JobScope:
        return self.rules.scope


def _refused(refusal: Refusal) -> web.Response:
    return web.json_response(refusal.body(), status=refusal.status)


def _json_object(raw: bytes) -> dict[str, Any] | Refusal:
    """The body as MLflow reads it (empty: ``{}``; a JSON string holding JSON, as old clients
    send, decoded once more); a key given twice is refused (parsers disagree on which wins)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("a key is given twice")
        return dict(pairs)

    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, object_pairs_hook=unique)
        if isinstance(body, str):
            body = json.loads(body, object_pairs_hook=unique)
    except ValueError as exc:
        return invalid(f"the body is not JSON MLflow would read: {exc}")
    return body if isinstance(body, dict) else invalid("the body must be a JSON object")


def _picked(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: headers[name] for name in names if name in headers}


class _Handler:
    def __init__(
        self, rules: TrackingRules, upstream: Upstream, max_upload_bytes: int | None
    ) -> None:
        self.rules = rules
        self.upstream = upstream
        self.max_upload_bytes = max_upload_bytes
        self.uploaded_bytes = 0  # artifact bodies forwarded so far (their Content-Length)

    def _upload_refused(self, request: web.Request) -> Refusal | None:
        """With a cap, an upload says its length and fits in what is left of the job's cap."""
        if self.max_upload_bytes is None or not request.can_read_body:
            return None
        length = request.content_length
        if length is None:
            return Refusal(411, "INVALID_PARAMETER_VALUE", "an artifact upload states its length")
        if self.uploaded_bytes + length > self.max_upload_bytes:
            return Refusal(
                413,
                "RESOURCE_LIMIT_EXCEEDED",
                f"theodolite tracking proxy: this job's artifacts may total "
                f"{self.max_upload_bytes} bytes ({self.uploaded_bytes} uploaded)",
            )
        self.uploaded_bytes += length
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.raw_path.split("?", 1)[0])
        query = tuple(parse_qsl(request.query_string, keep_blank_values=True))
        body: dict[str, Any] | None = None
        if request.method != "GET" and not is_streamed(path):
            try:
                parsed = _json_object(await request.read())
            except web.HTTPRequestEntityTooLarge:
                return _refused(Refusal(413, "INVALID_PARAMETER_VALUE", "the body is too large"))
            if isinstance(parsed, Refusal):
                return _refused(parsed)
            body = parsed
        try:
            verdict = await self.rules.judge(TrackingRequest(request.method, path, query, body))
        except TrackingProxyError as exc:
            return _refused(Refusal(503, "TEMPORARILY_UNAVAILABLE", str(exc)))
        except Exception:  # a rule's bug: refuse, never forward unjudged
            log.exception(
                "run %s: judging %s %s failed", self.rules.scope.run_id, request.method, path
            )
            return _refused(
                Refusal(500, "INTERNAL_ERROR", "the tracking proxy could not judge this")
            )
        if isinstance(verdict, Refusal):
            log.info(
                "run %s: refused %s %s: %s",
                self.rules.scope.run_id,
                request.method,
                path,
                verdict.message,
            )
            return _refused(verdict)
        if verdict.streamed and (too_much := self._upload_refused(request)) is not None:
            return _refused(too_much)
        log.debug("run %s: forwards %s %s", self.rules.scope.run_id, request.method, path)
        try:
            return await self._forward(request, verdict)
        except (aiohttp.ClientError, TrackingProxyError) as exc:
            refusal = Refusal(503, "TEMPORARILY_UNAVAILABLE", f"MLflow did not answer: {exc}")
            return _refused(refusal)

    async def _forward(self, request: web.Request, verdict: Forward) -> web.StreamResponse:
        headers = _picked(request.headers, _REQUEST_HEADERS)
        data: Any = None
        if verdict.streamed:
            data = request.content if request.can_read_body and request.method != "GET" else None
        elif request.method != "GET":
            data = json.dumps(verdict.body or {}).encode()
            headers["Content-Type"] = "application/json"
            headers.pop("Content-Length", None)
        if verdict.records_logged_model:
            headers["Accept-Encoding"] = "identity"  # the proxy reads this answer itself
        async with self.upstream.session.request(
            request.method,
            self.upstream.url(verdict.path),
            params=verdict.query if request.method == "GET" else None,
            data=data,
            headers=headers,
        ) as answer:
            if verdict.records_logged_model:
                content = await answer.read()
                if answer.status == 200:
                    try:
                        self.rules.owned.remember(json.loads(content))
                    except ValueError:
                        log.warning(
                            "run %s: a logged model answer not JSON", self.rules.scope.run_id
                        )
                return web.Response(
                    body=content,
                    status=answer.status,
                    headers=_picked(answer.headers, ("Content-Type",)),
                )
            response = web.StreamResponse(
                status=answer.status, headers=_picked(answer.headers, _RESPONSE_HEADERS)
            )
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(_STREAM_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response


def _clear_socket_path(socket_path: Path) -> None:
    """The socket's folder made, a socket left by an earlier attempt removed."""
    if len(os.fsencode(socket_path)) > _UNIX_PATH_MAX:
        raise ValueError(f"unix socket path over {_UNIX_PATH_MAX} bytes: {socket_path}")
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_socket(socket_path)


def _remove_socket(socket_path: Path) -> None:
    socket_path.unlink(missing_ok=True)


@asynccontextmanager
async def job_tracking_proxy(
    *,
    socket_path: Path,
    upstream: str,
    run_id: str,
    experiment_id: str,
    readable_experiments: Iterable[str] = (),
    run_artifact_uri: str | None = None,
    upstream_headers: Mapping[str, str] | None = None,
    max_upload_bytes: int | None = None,
    socket_mode: int = 0o666,
) -> AsyncIterator[TrackingProxy]:
    """Serve one job's MLflow proxy on the unix socket ``socket_path`` while the block runs.

    ``upstream`` is the real tracking URI (``settings.mlflow.tracking_uri``); the proxy calls it
    with ``upstream_headers`` (default: the worker's ``MLFLOW_TRACKING_TOKEN`` or
    ``_USERNAME``/``_PASSWORD``, see ``worker_credentials``). The job writes only ``run_id``
    (which must be a run of ``experiment_id``) and the logged models it creates, and reads runs
    and artifacts of ``experiment_id`` and ``readable_experiments``, and the model registry.

    ``run_artifact_uri`` (``run.info.artifact_uri`` from creating the run), when given, saves
    asking MLflow for the run at start (about 15 ms of each job's start); without it, or with
    other readable experiments, the proxy asks. ``max_upload_bytes`` caps what the job's
    artifact uploads may total (its folder has a disk limit, MLflow's store none): a 413 beyond.

    The socket's folder is made if missing; the socket gets ``socket_mode`` (any uid may
    connect: the sandbox's own uid must, and only this job's mount namespace shows the path).
    ``socket_path`` must be short (107 bytes at most, a unix socket's limit). Raises
    ``TrackingProxyError`` when MLflow does not know the run or an experiment, or is down.
    """
    _clear_socket_path(socket_path)
    headers = dict(worker_credentials() if upstream_headers is None else upstream_headers)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, auto_decompress=False
    ) as session:
        tracking = Upstream(upstream, session)
        scope = await tracking.job_scope(
            run_id, experiment_id, frozenset(readable_experiments), run_artifact_uri
        )
        rules = TrackingRules(scope, tracking)
        app = web.Application(client_max_size=MAX_JSON_BODY)
        app.router.add_route("*", "/{tail:.*}", _Handler(rules, tracking, max_upload_bytes).handle)
        # A job killed mid-upload leaves a request open: the worker does not wait long for it.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.UnixSite(runner, str(socket_path)).start()
            os.chmod(socket_path, socket_mode)
            yield TrackingProxy(socket_path=socket_path, rules=rules)
        finally:
            await runner.cleanup()
            _remove_socket(socket_path)
