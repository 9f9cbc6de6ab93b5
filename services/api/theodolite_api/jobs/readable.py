"""The other experiments of its group a job may read: those its remote ``path`` values name.

A job downloads ``runs:/`` and ``mlflow-artifacts:/`` values itself, through its tracking proxy,
which reads its own experiment only unless the job message widens it. Submission widens it to
the MLflow experiments those values name, when each belongs to an experiment of the job's group;
a value naming anything else is refused with the same words whether it is missing or another
group's, so an answer says nothing about what other groups hold. ``models:/`` values are read
through the registry, as before."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.mlproject import EntryPointSpec
from theodolite.problems import Problem
from theodolite.web.errors import NotFound
from theodolite_api.clients.mlflow import MlflowReader, MlflowRefused
from theodolite_api.repositories import experiments as experiment_repo

NOT_IN_GROUP = "not in an experiment of your group"
# MLflow's own rule for a run id (``_validate_run_id``): anything else it does not have.
_RUN_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,255}")


@dataclass(frozen=True)
class PathSource:
    """What a remote path value reads: a run (``runs:/``) or an MLflow experiment's artifacts
    (``mlflow-artifacts:/``); neither known when the value is malformed."""

    run_id: str | None = None
    mlflow_experiment_id: str | None = None


def path_source(value: str) -> PathSource | None:
    """The source a ``runs:/`` or ``mlflow-artifacts:/`` value names, as MLflow parses it; None
    for any other value (local, ``models:/``, the worker's own schemes).

    ``runs:/<run id>/<path>`` (MLflow's ``parse_runs_uri``: the first part of the path, whatever
    the host). ``mlflow-artifacts:[//host]/<experiment id>/...``: MLflow's artifact layout,
    ``<experiment id>/<run id>/artifacts/...`` for a run's artifacts and
    ``<experiment id>/models/<model id>/artifacts/...`` for MLflow 3's logged models."""
    parsed = urlparse(value)
    if parsed.scheme not in ("runs", "mlflow-artifacts"):
        return None
    first = parsed.path.removeprefix("/").split("/")[0] if parsed.path.startswith("/") else ""
    if parsed.scheme == "runs":
        return PathSource(run_id=first if _RUN_ID.fullmatch(first) else None)
    return PathSource(mlflow_experiment_id=first if first.isdigit() else None)


async def readable_experiments(
    *,
    session: AsyncSession,
    mlflow: MlflowReader,
    spec: EntryPointSpec,
    params: dict[str, str],
    group_id: uuid.UUID,
    own_mlflow_experiment_id: str,
) -> tuple[list[str], list[Problem]]:
    """The MLflow experiments (other than the job's own) its path values read, sorted, and a
    problem for each value outside the group. Raises ``DependencyUnavailable`` when MLflow is
    down (the submission then creates nothing)."""
    if spec.file:  # a file run directly gets its values as text: nothing is downloaded
        return [], []
    group_experiments: set[str] | None = None
    found: set[str] = set()
    problems: list[Problem] = []
    for name, declared in spec.parameters.items():
        value = params.get(name)
        source = None if declared.kind != "path" or value is None else path_source(value)
        if source is None:
            continue
        experiment = source.mlflow_experiment_id
        if source.run_id is not None:
            experiment = await _run_experiment(mlflow, source.run_id)
        if group_experiments is None:
            group_experiments = await experiment_repo.mlflow_ids_of_group(
                session=session, group_id=group_id
            )
        if experiment is None or experiment not in group_experiments:
            problems.append(Problem(field=f"params.{name}", message=NOT_IN_GROUP))
        elif experiment != own_mlflow_experiment_id:
            found.add(experiment)
    return sorted(found), problems


async def _run_experiment(mlflow: MlflowReader, run_id: str) -> str | None:
    """The MLflow experiment of the run; None when MLflow has no such run."""
    try:
        run = await mlflow.run(run_id)
    except (NotFound, MlflowRefused):
        return None
    experiment = run.get("info", {}).get("experiment_id")
    return str(experiment) if experiment is not None else None
