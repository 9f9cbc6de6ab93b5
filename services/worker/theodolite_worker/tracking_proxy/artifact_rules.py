"""The proxied artifact endpoints (``/api/2.0/mlflow-artifacts/...``, served by ``mlflow server
--serve-artifacts``): judged by the path alone, bodies streamed through.

A path is a ``mlflow-artifacts`` root followed by the file's place in it: a run's artifacts lie
under ``<experiment>/<run>/artifacts``, a logged model's under ``<experiment>/models/<id>/
artifacts`` (MLflow's layout below an experiment's artifact location).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from theodolite_worker.tracking_proxy.scope import (
    Forward,
    JobScope,
    OwnedModels,
    Query,
    Verdict,
    artifact_root,
    denied,
    invalid,
)

_FILES = "mlflow-artifacts/artifacts"
_MODEL_ARTIFACTS = re.compile(r"(?:^|/)models/(?P<id>m-[0-9A-Za-z]+)/artifacts(?:/|$)")
_MULTIPART = (
    "mlflow-artifacts/mpu/create/",
    "mlflow-artifacts/mpu/complete/",
    "mlflow-artifacts/mpu/abort/",
)


def unsafe_artifact_path(path: str) -> str | None:
    """Why ``path`` (decoded) cannot be judged by prefix, or ``None`` when it can."""
    if "\\" in path or "\x00" in path:
        return "artifact paths may not hold a backslash or NUL"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "artifact paths may not hold empty, '.' or '..' parts"
    return None


def _below(path: str, roots: Iterable[str | None], *, inside: bool) -> bool:
    """``path`` lies in one of ``roots`` (strictly inside it when ``inside``: a file to write)."""
    for root in roots:
        if root is None:
            continue
        if path.startswith(f"{root}/") or (not inside and path == root):
            return True
    return False


def _writable(path: str, scope: JobScope, owned: OwnedModels) -> bool:
    return _below(path, [scope.run_artifact_root, *owned.roots.values()], inside=True)


def readable(path: str, scope: JobScope, owned: OwnedModels) -> bool:
    """``path`` lies in the job's run, its models, a readable experiment or a registered model."""
    roots = [scope.run_artifact_root, *owned.roots.values(), *scope.readable_artifact_roots]
    return _below(path, [*roots, *owned.registered_roots], inside=False)


def read_path(method: str, endpoint: str, query: Query) -> str | None:
    """The artifact path a download or listing reads (``None`` for anything else)."""
    if method != "GET":
        return None
    if endpoint == _FILES:
        paths = [value for key, value in query if key == "path"]
        return paths[0] if len(paths) == 1 else None
    return endpoint.removeprefix(f"{_FILES}/") if endpoint.startswith(f"{_FILES}/") else None


def logged_model_in(path: str) -> str | None:
    """The logged model whose artifacts ``path`` names (MLflow's ``.../models/<id>/artifacts``
    layout), if any: the proxy then asks whether the registry publishes it."""
    match = _MODEL_ARTIFACTS.search(path)
    return match["id"] if match else None


def own_model_source(source: Any, scope: JobScope, owned: OwnedModels) -> bool:
    """A model version's ``source`` lies in the job's run or a logged model it created:
    ``runs:/<own run>/...``, ``models:/<own model id>`` or an ``mlflow-artifacts:`` URI there."""
    if not isinstance(source, str) or ".." in source.split("/"):
        return False
    if source == f"runs:/{scope.run_id}" or source.startswith(f"runs:/{scope.run_id}/"):
        return True
    if source.startswith("models:/"):
        return owned.owns(source.removeprefix("models:/"))
    root = artifact_root(source)
    own_roots = [scope.run_artifact_root, *owned.roots.values()]
    return root is not None and _below(root, own_roots, inside=False)


def judge_artifacts(
    method: str, endpoint: str, query: Query, scope: JobScope, owned: OwnedModels
) -> Verdict:
    """Uploads within the job's run or its logged models; downloads and listings within what
    the job may read (registered models' included, once ``owned`` has learnt their roots);
    deleting and presigned URLs not at all."""
    api_path = f"/api/2.0/{endpoint}"
    if endpoint == _FILES and method == "GET":  # a listing: ?path=...
        paths = [value for key, value in query if key == "path"]
        if len(paths) != 1:
            return denied("a job lists artifacts of one path it names (path=...)")
        return _judged(paths[0], readable, scope, owned, Forward(api_path, query=query))
    if endpoint.startswith(f"{_FILES}/"):
        path = endpoint.removeprefix(f"{_FILES}/")
        if method == "PUT":
            return _judged(path, _writable, scope, owned, Forward(api_path, streamed=True))
        if method == "GET":
            return _judged(path, readable, scope, owned, Forward(api_path))
        return denied(f"{method} of an artifact is not allowed for jobs")
    for prefix in _MULTIPART:
        if endpoint.startswith(prefix) and method == "POST":
            path = endpoint.removeprefix(prefix)
            return _judged(path, _writable, scope, owned, Forward(api_path, streamed=True))
    return denied(f"{method} {endpoint} is not allowed for jobs")


def _judged(
    path: str,
    allowed: Callable[[str, JobScope, OwnedModels], bool],
    scope: JobScope,
    owned: OwnedModels,
    verdict: Forward,
) -> Verdict:
    if (problem := unsafe_artifact_path(path)) is not None:
        return invalid(problem)
    if not allowed(path, scope, owned):
        where = "write" if allowed is _writable else "read"
        return denied(f"artifact path {path!r} is outside what this job may {where}")
    return verdict
