"""MLflow over its REST API, with httpx: the api stays free of the mlflow package and never
blocks its event loop on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from theodolite.problems import Problem, control_character_message
from theodolite.settings import MlflowSettings
from theodolite.web.errors import DependencyUnavailable, DomainError, NotFound

# MLflow's error codes (``error_code`` of its JSON error body) that are the caller's doing.
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}
_INVALID_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_REQUEST"}


class MlflowRefused(DomainError, status_code=422, title="Invalid request"):
    """MLflow refused a value the caller gave (a model name it does not allow, ...)."""


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    """MLflow's ``error_code`` and ``message`` of an error answer (either may be missing)."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:300]
    if not isinstance(body, dict):
        return None, response.text[:300]
    return body.get("error_code"), str(body.get("message") or response.text[:300])


def _plain_value(field: str, value: str) -> None:
    """Refuse a control character before MLflow sees it (its database refuses NUL: a 500)."""
    if (message := control_character_message(value, allow_whitespace=False)) is not None:
        raise MlflowRefused(f"{field}: {message}", [Problem(field=field, message=message)])


class MlflowReader:
    def __init__(self, settings: MlflowSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = client
        self._base = settings.tracking_uri.rstrip("/")

    def run_url(self, mlflow_experiment_id: str, run_id: str) -> str:
        experiment, run = quote(mlflow_experiment_id, safe=""), quote(run_id, safe="")
        return f"{self._settings.ui_url}/#/experiments/{experiment}/runs/{run}"

    def experiment_url(self, mlflow_experiment_id: str) -> str:
        return f"{self._settings.ui_url}/#/experiments/{quote(mlflow_experiment_id, safe='')}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, f"{self._base}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"MLflow at {self._base} did not answer: {exc}") from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(method, path, **kwargs)
        if response.status_code < 400:
            result: dict[str, Any] = response.json()
            return result
        code, message = _error_of(response)
        # The caller's mistakes answer as such; only MLflow failing (5xx, or answering in a way
        # it should not) is "unavailable".
        if response.status_code == 404 or code in _NOT_FOUND_CODES:
            raise NotFound(f"MLflow has no such resource ({path}): {message}")
        if code in _INVALID_CODES or response.status_code in (400, 422):
            raise MlflowRefused(
                f"MLflow refused the request: {message}",
                [Problem(field="mlflow", message=f"{code}: {message}" if code else message)],
            )
        raise DependencyUnavailable(f"MLflow answered {response.status_code} to {path}: {message}")

    async def ensure_experiment(self, name: str) -> str:
        """The id of MLflow's experiment of that name, created (or restored) when needed."""
        response = await self._call(
            "POST", "/api/2.0/mlflow/experiments/create", json={"name": name}
        )
        if response.status_code < 400:
            return str(response.json()["experiment_id"])
        code, message = _error_of(response)
        if code in _INVALID_CODES:
            raise MlflowRefused(
                f"MLflow refused the experiment name {name!r}: {message}",
                [Problem(field="name", message=message)],
            )
        if code != "RESOURCE_ALREADY_EXISTS":
            raise DependencyUnavailable(
                f"MLflow refused to create experiment {name!r}: {response.text[:300]}"
            )
        found = await self._json(
            "GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
        )
        experiment = found["experiment"]
        if experiment.get("lifecycle_stage") == "deleted":
            await self._json(
                "POST",
                "/api/2.0/mlflow/experiments/restore",
                json={"experiment_id": experiment["experiment_id"]},
            )
        return str(experiment["experiment_id"])

    async def run(self, run_id: str) -> dict[str, Any]:
        """A run's info and data (latest metric values, params, tags)."""
        found = await self._json("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})
        run: dict[str, Any] = found["run"]
        return run

    async def start_run(
        self, mlflow_experiment_id: str, name: str, tags: dict[str, str], start_ms: int
    ) -> str:
        """A new run (a pipeline's parent run); its id."""
        created = await self._json(
            "POST",
            "/api/2.0/mlflow/runs/create",
            json={
                "experiment_id": mlflow_experiment_id,
                "run_name": name,
                "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            },
        )
        return str(created["run"]["info"]["run_id"])

    async def end_run(self, run_id: str, status: str, end_ms: int) -> None:
        """Mark a run ended: FINISHED, FAILED or KILLED."""
        await self._json(
            "POST",
            "/api/2.0/mlflow/runs/update",
            json={"run_id": run_id, "status": status, "end_time": end_ms},
        )

    async def delete_run(self, run_id: str) -> None:
        await self._json("POST", "/api/2.0/mlflow/runs/delete", json={"run_id": run_id})

    async def ping(self) -> None:
        response = await self._call("GET", "/health")
        if response.status_code != 200:
            raise DependencyUnavailable(f"MLflow health answered {response.status_code}")

    async def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Every metric of a run: its latest value and its whole history."""
        run = await self._json("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})
        latest = run["run"].get("data", {}).get("metrics", [])
        result = []
        for metric in sorted(latest, key=lambda m: m["key"]):
            history = await self._json(
                "GET",
                "/api/2.0/mlflow/metrics/get-history",
                params={"run_id": run_id, "metric_key": metric["key"], "max_results": 25000},
            )
            points = sorted(
                history.get("metrics", []), key=lambda m: (int(m.get("step", 0)), m["timestamp"])
            )
            result.append(
                {
                    "key": metric["key"],
                    "latest": {
                        "value": metric["value"],
                        "step": int(metric.get("step", 0)),
                        "timestamp": int(metric["timestamp"]),
                    },
                    "history": [
                        {
                            "value": p["value"],
                            "step": int(p.get("step", 0)),
                            "timestamp": int(p["timestamp"]),
                        }
                        for p in points
                    ],
                }
            )
        return result

    async def artifacts(self, run_id: str, path: str = "") -> list[dict[str, Any]]:
        """Every artifact file of a run, walking folders."""
        params: dict[str, str] = {"run_id": run_id}
        if path:
            params["path"] = path
        listing = await self._json("GET", "/api/2.0/mlflow/artifacts/list", params=params)
        files: list[dict[str, Any]] = []
        for entry in listing.get("files", []):
            if entry.get("is_dir"):
                files.extend(await self.artifacts(run_id, entry["path"]))
            else:
                files.append({"path": entry["path"], "size_bytes": int(entry.get("file_size", 0))})
        return files

    async def logged_models(self, run_id: str) -> list[dict[str, Any]]:
        """The models a run logged (MLflow 3 keeps them apart from its artifacts): name, id and
        ``models:/`` URI, by name."""
        run = await self._json("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})
        experiment_id = run["run"]["info"]["experiment_id"]
        escaped = run_id.replace("'", "\\'")
        models: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "filter": f"source_run_id = '{escaped}'",
                "max_results": 50,
            }
            if token:
                body["page_token"] = token
            try:
                page = await self._json("POST", "/api/2.0/mlflow/logged-models/search", json=body)
            except NotFound:
                return []  # an MLflow before 3 keeps no logged models apart
            models.extend(page.get("models", []))
            token = page.get("next_page_token")
            if not token:
                break
        found = [
            {
                "name": model["info"]["name"],
                "model_id": model["info"]["model_id"],
                "uri": f"models:/{model['info']['model_id']}",
            }
            for model in models
            if model.get("info", {}).get("source_run_id") == run_id
        ]
        return sorted(found, key=lambda m: (m["name"], m["model_id"]))

    async def registered_models(self) -> list[dict[str, Any]]:
        """Every registered model of the MLflow model registry, by name."""
        models: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"max_results": 1000}
            if token:
                params["page_token"] = token
            page = await self._json(
                "GET", "/api/2.0/mlflow/registered-models/search", params=params
            )
            models.extend(page.get("registered_models", []))
            token = page.get("next_page_token")
            if not token:
                return sorted(models, key=lambda m: m["name"])

    async def model_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of one registered model, newest first; NotFound if it has none."""
        _plain_value("name", name)
        await self._json("GET", "/api/2.0/mlflow/registered-models/get", params={"name": name})
        escaped = name.replace("'", "\\'")
        page = await self._json(
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            params={"filter": f"name='{escaped}'", "max_results": 10000},
        )
        versions = page.get("model_versions", [])
        return sorted(versions, key=lambda v: int(v["version"]), reverse=True)

    async def open_artifact(
        self, run_id: str, path: str
    ) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        """Start streaming one artifact; the caller iterates the body and closes the response."""
        request = self._http.build_request(
            "GET", f"{self._base}/get-artifact", params={"path": path, "run_uuid": run_id}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"MLflow at {self._base} did not answer: {exc}") from exc
        if response.status_code >= 500:
            await response.aclose()
            raise DependencyUnavailable(f"MLflow answered {response.status_code} for an artifact")
        if response.status_code >= 400:
            await response.aclose()
            raise NotFound(f"no artifact {path!r} in run {run_id}")
        return response, response.aiter_bytes()
