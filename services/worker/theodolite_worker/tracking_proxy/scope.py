"""What one job may touch in MLflow, and the refusals the proxy answers with.

Kept apart from the rules so that the worker can build a scope (and tests can read one) without
the rules' endpoint tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit

ARTIFACTS_SCHEME = "mlflow-artifacts"


def artifact_root(uri: str | None) -> str | None:
    """The path an ``mlflow-artifacts:`` URI names under the server's artifact root, as the
    proxied artifact endpoints take it (``mlflow-artifacts:/1/<run>/artifacts`` ->
    ``1/<run>/artifacts``); ``None`` for any other scheme (a job cannot reach those anyway)."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme != ARTIFACTS_SCHEME:
        return None
    root = parts.path.strip("/")
    return root or None


@dataclass(frozen=True)
class JobScope:
    """One job's grant: it writes ``run_id`` (and the logged models it creates through the
    proxy), and reads the runs and artifacts of ``readable_experiments`` (its own included)."""

    run_id: str
    experiment_id: str
    readable_experiments: frozenset[str]
    # ``mlflow-artifacts`` paths (see ``artifact_root``): the run's own, and each readable
    # experiment's artifact location (runs and logged models of an experiment live below it).
    run_artifact_root: str | None
    readable_artifact_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.experiment_id not in self.readable_experiments:
            raise ValueError("a job always reads its own experiment")


@dataclass
class OwnedModels:
    """Logged models (MLflow 3 ``LoggedModel``) this job created through its proxy: model id ->
    its ``mlflow-artifacts`` root. Only these may be finalized, tagged or uploaded to.

    ``registered_roots``: the roots of other logged models the registry publishes (a version's
    source is ``models:/<id>``), learnt as the job reads them: readable, never writable."""

    roots: dict[str, str | None] = field(default_factory=dict)
    registered_roots: set[str] = field(default_factory=set)

    def owns(self, model_id: str) -> bool:
        return model_id in self.roots

    def remember(self, created: Any) -> None:
        """Record a model from MLflow's answer to ``CreateLoggedModel`` (``{"model": {"info":
        {"model_id", "artifact_uri", ...}}}``); an answer of another shape records nothing."""
        info = created.get("model", {}).get("info", {}) if isinstance(created, dict) else {}
        model_id = info.get("model_id") if isinstance(info, dict) else None
        if isinstance(model_id, str) and model_id:
            self.roots[model_id] = artifact_root(info.get("artifact_uri"))


class Lookup(Protocol):
    """Facts the rules ask MLflow for (the proxy asks with the worker's own credentials)."""

    async def run_experiment(self, run_id: str) -> str | None:
        """The experiment of a run; ``None`` when there is no such run."""
        ...

    async def experiment_id_by_name(self, name: str) -> str | None: ...

    async def logged_model_experiment(self, model_id: str) -> str | None: ...

    async def registered_model_runs(self, name: str) -> list[str]:
        """The run of every version of a registered model ("" for a version without one)."""
        ...

    async def registered_model_root(self, model_id: str) -> str | None:
        """The artifact root of a logged model that some registered version has as its source
        (``models:/<id>``); ``None`` when the registry does not publish it."""
        ...


@dataclass(frozen=True)
class Refusal:
    """A request the proxy does not forward: an MLflow-style JSON error naming the rule."""

    status: int
    error_code: str
    message: str

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def denied(rule: str) -> Refusal:
    """403 ``PERMISSION_DENIED``, the code MLflow's own auth app answers with."""
    return Refusal(403, "PERMISSION_DENIED", f"theodolite tracking proxy: {rule}")


def invalid(problem: str) -> Refusal:
    return Refusal(400, "INVALID_PARAMETER_VALUE", f"theodolite tracking proxy: {problem}")


Query: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TrackingRequest:
    """A request as the rules see it: the decoded path, the query, the JSON body (non-GET)."""

    method: str
    path: str
    query: Query = ()
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Forward:
    """Forward this (with the worker's credentials): ``path`` decoded (the proxy encodes it),
    ``query`` for GET calls, ``body`` for the others; ``streamed``: the body is the job's own
    bytes, passed through unread (artifacts)."""

    path: str
    query: Query = ()
    body: dict[str, Any] | None = None
    streamed: bool = False
    records_logged_model: bool = False


Verdict: TypeAlias = Forward | Refusal
