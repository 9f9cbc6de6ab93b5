"""Which MLflow REST calls a job may make through its proxy (MLflow 3.17's REST paths, from
``mlflow/server/handlers.py`` ``get_endpoints``: ``/api/2.0/mlflow/...``, a few ``/api/3.0``).

Writes must name the job's own run (``run_id`` or its alias ``run_uuid``, both checked); reads
reach its readable experiments and the model registry. Anything not listed here is refused.
What is forwarded is what was checked: GET calls forward their parsed query only, other calls
their parsed JSON body only, re-encoded, so MLflow cannot read a request differently.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from theodolite_worker.tracking_proxy.artifact_rules import (
    judge_artifacts,
    logged_model_in,
    own_model_source,
    read_path,
    readable,
)
from theodolite_worker.tracking_proxy.read_rules import ReadRules
from theodolite_worker.tracking_proxy.scope import (
    Forward,
    JobScope,
    Lookup,
    OwnedModels,
    Refusal,
    TrackingRequest,
    Verdict,
    denied,
    invalid,
)

__all__ = ["TrackingRequest", "TrackingRules", "is_streamed"]

_API = re.compile(r"^/api/(?P<version>[23])\.0/(?P<endpoint>mlflow(?:-artifacts)?/.*)$")
_LOGGED_MODEL = re.compile(r"^mlflow/logged-models/(?P<id>[^/]+)(?P<rest>/.*)?$")
# Tags the worker writes on every run: provenance a job may not forge or remove. The graph runner
# inside the job records its own steps under theodolite.step.* (statuses, attempts): the job's
# account of itself, not provenance, so those stay the job's to write.
RESERVED_TAG_PREFIX = "theodolite."
JOB_TAG_PREFIX = "theodolite.step."


def is_streamed(path: str) -> bool:
    """Artifact bodies pass through unread: only their path is judged."""
    match = _API.match(path)
    return match is not None and match["endpoint"].startswith("mlflow-artifacts/")


class TrackingRules(ReadRules):
    """The rules for one job; ``owned`` grows as the job creates logged models."""

    def __init__(self, scope: JobScope, lookup: Lookup, owned: OwnedModels | None = None) -> None:
        super().__init__(scope, lookup, owned)
        self._post: dict[str, Callable[[TrackingRequest], Awaitable[Verdict]]] = {
            **dict.fromkeys(
                (
                    "mlflow/runs/log-metric",
                    "mlflow/runs/log-parameter",
                    "mlflow/runs/log-inputs",
                    "mlflow/runs/log-model",
                ),
                self._own_run_write,
            ),
            "mlflow/runs/outputs": self._log_outputs,
            "mlflow/runs/log-batch": self._log_batch,
            "mlflow/runs/set-tag": self._tag_write,
            "mlflow/runs/delete-tag": self._tag_write,
            "mlflow/runs/update": self._update_run,
            "mlflow/runs/search": self._search_in_readable,
            "mlflow/logged-models": self._create_logged_model,
            "mlflow/logged-models/search": self._search_in_readable,
            "mlflow/registered-models/create": self._forward_body,
            "mlflow/registered-models/get-latest-versions": self._forward_body,
            "mlflow/model-versions/create": self._create_model_version,
        }
        self._get: dict[str, Callable[[TrackingRequest], Awaitable[Verdict]]] = {
            "mlflow/runs/get": self._read_run,
            "mlflow/metrics/get-history": self._read_run,
            "mlflow/artifacts/list": self._read_run,
            "mlflow/metrics/get-history-bulk-interval": self._read_runs,
            "mlflow/experiments/get": self._read_experiment,
            "mlflow/experiments/get-by-name": self._read_experiment_by_name,
            "mlflow/server-info": self._forward_query,
            **dict.fromkeys(
                (
                    "mlflow/registered-models/get",
                    "mlflow/registered-models/search",
                    "mlflow/registered-models/get-latest-versions",
                    "mlflow/registered-models/alias",
                    "mlflow/model-versions/get",
                    "mlflow/model-versions/get-download-uri",
                    "mlflow/model-versions/search",
                ),
                self._forward_query,
            ),
        }

    async def judge(self, request: TrackingRequest) -> Verdict:
        """Forward the request as checked, or refuse it naming the rule."""
        match = _API.match(request.path)
        if match is None:
            return denied(f"{request.method} {request.path} is not an MLflow REST call a job makes")
        if any(part in ("", ".", "..") for part in request.path[1:].split("/")):
            return invalid("request paths may not hold empty, '.' or '..' parts")
        endpoint, method = match["endpoint"], request.method.upper()
        if endpoint.startswith("mlflow-artifacts/"):
            path = read_path(method, endpoint, request.query)
            if path is not None and not readable(path, self.scope, self.owned):
                await self._learn_registered_root(path)
            return judge_artifacts(method, endpoint, request.query, self.scope, self.owned)
        table = self._get if method == "GET" else self._post if method == "POST" else {}
        if (check := table.get(endpoint)) is not None:
            return await check(request)
        if (model := _LOGGED_MODEL.match(endpoint)) and model["id"] != "search":
            return await self._logged_model_call(method, request, model["id"], model["rest"] or "")
        return denied(f"{method} {endpoint} is not allowed for jobs")

    # -- writes to the job's own run ------------------------------------------------------------

    async def _own_run_write(self, request: TrackingRequest) -> Verdict:
        body = request.body or {}
        run = self._run_named(body)
        if isinstance(run, Refusal):
            return run
        if run != self.scope.run_id:
            return denied(f"a job writes only its own run {self.scope.run_id}, not {run}")
        return Forward(request.path, body=body)

    def _reserved(self, keys: list[Any]) -> Refusal | None:
        for key in keys:
            if not isinstance(key, str):
                return invalid("tag keys must be strings")
            if key.startswith(RESERVED_TAG_PREFIX) and not key.startswith(JOB_TAG_PREFIX):
                return denied(f"tag {key!r}: {RESERVED_TAG_PREFIX}* tags are the worker's")
        return None

    async def _tag_write(self, request: TrackingRequest) -> Verdict:
        verdict = await self._own_run_write(request)
        if isinstance(verdict, Forward):
            return self._reserved([(request.body or {}).get("key")]) or verdict
        return verdict

    async def _log_batch(self, request: TrackingRequest) -> Verdict:
        verdict = await self._own_run_write(request)
        tags = (request.body or {}).get("tags") or []
        if isinstance(verdict, Forward):
            if not isinstance(tags, list) or not all(isinstance(tag, dict) for tag in tags):
                return invalid("tags must be a list of {key, value}")
            return self._reserved([tag.get("key") for tag in tags]) or verdict
        return verdict

    async def _log_outputs(self, request: TrackingRequest) -> Verdict:
        """A run's outputs are logged models it made: this job's own."""
        verdict = await self._own_run_write(request)
        models = (request.body or {}).get("models") or []
        if isinstance(verdict, Forward):
            if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
                return invalid("models must be a list of {model_id, step}")
            for model in models:
                if not self.owned.owns(str(model.get("model_id"))):
                    return denied(
                        f"logged model {model.get('model_id')} was not created by this job"
                    )
        return verdict

    async def _update_run(self, request: TrackingRequest) -> Verdict:
        """The worker ends its jobs' runs: a status other than RUNNING, or an end time, is
        dropped (the call still succeeds, so ``mlflow.end_run()`` in a job does not fail);
        a new run name passes."""
        verdict = await self._own_run_write(request)
        if isinstance(verdict, Refusal):
            return verdict
        body = dict(verdict.body or {})
        if body.get("status") != "RUNNING":
            body.pop("status", None)
        body.pop("end_time", None)
        return Forward(request.path, body=body)

    # -- logged models (MLflow 3) and the registry ----------------------------------------------

    async def _create_logged_model(self, request: TrackingRequest) -> Verdict:
        body = request.body or {}
        if body.get("experiment_id") != self.scope.experiment_id:
            return denied(
                f"a job creates logged models only in experiment {self.scope.experiment_id}"
            )
        source_run = body.get("source_run_id")
        if source_run not in (None, "", self.scope.run_id):
            return denied(
                f"a logged model's source run must be the job's own run, not {source_run}"
            )
        return Forward(request.path, body=body, records_logged_model=True)

    async def _logged_model_call(
        self, method: str, request: TrackingRequest, model_id: str, rest: str
    ) -> Verdict:
        if method == "GET" and rest in ("", "/artifacts/directories"):
            if self.owned.owns(model_id) or (
                await self.lookup.logged_model_experiment(model_id)
                in self.scope.readable_experiments
                or await self.lookup.registered_model_root(model_id) is not None
            ):
                return Forward(request.path, query=request.query)
            return denied(
                f"logged model {model_id} is neither registered nor in an experiment this job "
                "may read"
            )
        writes = {("PATCH", ""), ("PATCH", "/tags"), ("POST", "/params")}
        if (method, rest) in writes or (method == "DELETE" and rest.startswith("/tags/")):
            if self.owned.owns(model_id):
                return Forward(request.path, body=request.body or {})
            return denied(f"logged model {model_id} was not created by this job")
        return denied(f"{method} logged-models{rest} is not allowed for jobs")

    async def _create_model_version(self, request: TrackingRequest) -> Verdict:
        """A new version of a registered model, from the job's own run or logged model only
        (MLflow 3 registers ``models:/<model id>`` and may send no ``run_id``)."""
        body = request.body or {}
        if any(key in body for key in ("run_id", "run_uuid")):
            verdict = await self._own_run_write(request)
            if isinstance(verdict, Refusal):
                return verdict
        model_id = body.get("model_id")
        if model_id not in (None, "") and not self.owned.owns(str(model_id)):
            return denied(f"logged model {model_id} was not created by this job")
        if not own_model_source(body.get("source"), self.scope, self.owned):
            return denied("a model version's source must be the job's own run or logged model")
        name = body.get("name")
        if not isinstance(name, str) or not name or "'" in name:
            return invalid("name must be a registered model's name")
        for run in await self.lookup.registered_model_runs(name):
            if not run or not await self._readable_run(run):
                return denied(
                    f"registered model {name!r} has versions from runs this job may not read"
                )
        return Forward(request.path, body=body)

    async def _learn_registered_root(self, path: str) -> None:
        """A read of a logged model's artifacts outside the job's experiments: readable when the
        registry publishes that model (a pipeline stage loads ``models:/<name>/<version>``)."""
        model_id = logged_model_in(path)
        if model_id is None:
            return
        root = await self.lookup.registered_model_root(model_id)
        if root is not None and logged_model_in(root) == model_id:
            self.owned.registered_roots.add(root)

    # -- reads ----------------------------------------------------------------------------------
