"""The real tracking server, as the proxy reaches it: with the worker's own credentials, for the
facts its rules need (a run's experiment, an experiment's artifact location) and to forward."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from theodolite_worker.tracking_proxy.scope import JobScope, artifact_root

_MODEL_ID = re.compile(r"^m-[0-9A-Za-z]+$")


class TrackingProxyError(Exception):
    """The proxy cannot serve this job (its run or experiment unusable, MLflow unreachable)."""


def worker_credentials(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers the MLflow client would send for the worker: ``MLFLOW_TRACKING_TOKEN``
    (bearer) or ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` (basic); none when unset."""
    env = os.environ if env is None else env
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


class Upstream:
    """One job's view of the tracking server (implements the rules' ``Lookup``)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self._run_experiments: dict[str, str | None] = {}  # a run never changes experiment
        self._registered_roots: dict[str, str | None] = {}

    def url(self, path: str) -> URL:
        """``path`` decoded, as the rules judged it: encoded once here (and not again by yarl),
        so MLflow decodes it back to exactly that."""
        return URL(f"{self.base_url}{quote(path, safe='/')}", encoded=True)

    async def _get(self, path: str, **params: str) -> Any | None:
        """MLflow's JSON answer to a GET, or ``None`` when it answered an error."""
        try:
            async with self.session.get(
                self.url(path), params=params, headers={"Accept-Encoding": "identity"}
            ) as response:
                if response.status != 200:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise TrackingProxyError(f"MLflow at {self.base_url} did not answer: {exc}") from exc

    async def run_experiment(self, run_id: str) -> str | None:
        if run_id not in self._run_experiments:
            found = await self._get("/api/2.0/mlflow/runs/get", run_id=run_id)
            info = (found or {}).get("run", {}).get("info", {})
            self._run_experiments[run_id] = info.get("experiment_id")
        return self._run_experiments[run_id]

    async def experiment_id_by_name(self, name: str) -> str | None:
        found = await self._get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)
        return (found or {}).get("experiment", {}).get("experiment_id")

    async def logged_model_experiment(self, model_id: str) -> str | None:
        found = await self._get(f"/api/2.0/mlflow/logged-models/{model_id}")
        return (found or {}).get("model", {}).get("info", {}).get("experiment_id")

    async def registered_model_runs(self, name: str) -> list[str]:
        runs: list[str] = []
        page: dict[str, str] = {}
        while True:
            found = await self._get(
                "/api/2.0/mlflow/model-versions/search",
                filter=f"name='{name}'",
                max_results="1000",
                **page,
            )
            if found is None:
                raise TrackingProxyError(f"MLflow did not list the versions of {name!r}")
            runs.extend(version.get("run_id", "") for version in found.get("model_versions", []))
            if not (token := found.get("next_page_token")):
                return runs
            page = {"page_token": token}

    async def _experiment_root(self, experiment_id: str) -> str | None:
        got = await self._get("/api/2.0/mlflow/experiments/get", experiment_id=experiment_id)
        if got is None:
            raise TrackingProxyError(f"MLflow has no experiment {experiment_id}")
        return artifact_root(got.get("experiment", {}).get("artifact_location"))

    async def registered_model_root(self, model_id: str) -> str | None:
        if model_id in self._registered_roots:
            return self._registered_roots[model_id]
        root = None
        if _MODEL_ID.match(model_id):
            versions = await self._get(
                "/api/2.0/mlflow/model-versions/search",
                filter=f"source_path = 'models:/{model_id}'",
                max_results="1",
            )
            if (versions or {}).get("model_versions"):
                found = await self._get(f"/api/2.0/mlflow/logged-models/{model_id}")
                info = (found or {}).get("model", {}).get("info", {})
                root = artifact_root(info.get("artifact_uri"))
        if root is not None:  # a registration is not taken back often: only hits are kept
            self._registered_roots[model_id] = root
        return root

    async def job_scope(
        self,
        run_id: str,
        experiment_id: str,
        readable_experiments: frozenset[str],
        run_artifact_uri: str | None = None,
    ) -> JobScope:
        """The scope of a job, with the artifact roots MLflow holds for its run and experiments
        (asked at once: this lies on the job's start); refuses a run not in ``experiment_id``.

        With the run's ``run_artifact_uri`` (the worker made the run and knows it) and no other
        experiment to read, MLflow is not asked at all: the experiment's root is the run's less
        its ``<run id>/artifacts`` (MLflow's layout)."""
        readable = readable_experiments | {experiment_id}
        run_root = artifact_root(run_artifact_uri)
        suffix = f"/{run_id}/artifacts"
        if readable == {experiment_id} and run_root is not None and run_root.endswith(suffix):
            self._run_experiments[run_id] = experiment_id
            return JobScope(
                run_id=run_id,
                experiment_id=experiment_id,
                readable_experiments=readable,
                run_artifact_root=run_root,
                readable_artifact_roots=(run_root.removesuffix(suffix),),
            )
        found, *roots = await asyncio.gather(
            self._get("/api/2.0/mlflow/runs/get", run_id=run_id),
            *(self._experiment_root(experiment) for experiment in sorted(readable)),
        )
        info = (found or {}).get("run", {}).get("info", {})
        if info.get("experiment_id") != experiment_id:
            raise TrackingProxyError(f"MLflow has no run {run_id} in experiment {experiment_id}")
        self._run_experiments[run_id] = experiment_id
        return JobScope(
            run_id=run_id,
            experiment_id=experiment_id,
            readable_experiments=readable,
            run_artifact_root=artifact_root(info.get("artifact_uri")),
            readable_artifact_roots=tuple(root for root in roots if root),
        )
