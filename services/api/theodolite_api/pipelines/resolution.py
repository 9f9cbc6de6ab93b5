"""A pipeline stage's references, resolved when its dependencies have succeeded: from their
jobs, and from their MLflow runs for ``metrics`` and ``params``. The resolved values are then
checked as any submitted value is; a value that does not fit fails the stage with the reason."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Pipeline, PipelineJob
from theodolite.db.tables import EntryPointArchive, Job
from theodolite.mlproject import EntryPointSpec, resolve_parameters
from theodolite.problems import ProblemsError
from theodolite.web.errors import NotFound
from theodolite_api.clients.mlflow import MlflowReader, MlflowRefused
from theodolite_api.jobs.dependencies import dependencies_of
from theodolite_api.pipelines.references import Reference, ResolutionError, substitute
from theodolite_api.repositories import pipelines as pipeline_repo


def _number(value: Any) -> str:
    """A metric as text: integers without a fraction, others as Python writes floats."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


class StageParameters:
    """The ``ParameterResolver`` the dependency consumer gives ``settle``."""

    def __init__(self, mlflow: MlflowReader) -> None:
        self._mlflow = mlflow

    async def __call__(self, *, session: AsyncSession, job: Job) -> str | None:
        link = await pipeline_repo.link_of(session=session, job_id=job.id)
        if link is None or not link.templates:
            return None
        pipeline = await session.get(Pipeline, link.pipeline_id)
        archive = await session.get(EntryPointArchive, job.entrypoint_id)
        assert pipeline is not None and archive is not None  # never deleted
        fan_in = bool(pipeline.stages[link.stage].get("fan_in"))
        upstream = await self._upstream(session, job, pipeline)
        runs: dict[str, dict[str, Any]] = {}

        async def value_of(reference: Reference) -> str:
            jobs = upstream.get(reference.stage, [])
            if not jobs:  # the plan made it a dependency: only a changed row can get here
                raise ResolutionError(f"{reference}: no job of stage {reference.stage!r}")
            values = [await self._value(reference, up, runs) for up, _ in jobs]
            if fan_in and jobs[0][1].point_index is not None:
                # A fan-in sees one value per point, in point order: metrics as numbers.
                listed = [float(v) if reference.what == "metrics" else v for v in values]
                return json.dumps(listed)
            return values[0]

        resolved: dict[str, str] = {}
        for name, template in sorted(link.templates.items()):
            try:
                resolved[name] = await substitute(template, value_of)
            except ResolutionError as exc:
                return f"params.{name}: {exc}"
        spec = EntryPointSpec.model_validate(archive.entry_points[job.entry_point])
        try:
            job.params = resolve_parameters(spec, {**job.params, **resolved})
        except ProblemsError as exc:
            said = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
            return f"a resolved parameter does not fit: {said}"
        return None

    async def _upstream(
        self, session: AsyncSession, job: Job, pipeline: Pipeline
    ) -> dict[str, list[tuple[Job, PipelineJob]]]:
        """The jobs this one waits on, by stage, in point order."""
        waited = {d.id: d for d in await dependencies_of(session=session, job_id=job.id)}
        found: dict[str, list[tuple[Job, PipelineJob]]] = {}
        for link, upstream in await pipeline_repo.jobs_of(session=session, pipeline_id=pipeline.id):
            if upstream.id in waited:
                found.setdefault(link.stage, []).append((upstream, link))
        for jobs in found.values():
            jobs.sort(key=lambda pair: pair[1].point_index or 0)
        return found

    async def _value(
        self, reference: Reference, upstream: Job, runs: dict[str, dict[str, Any]]
    ) -> str:
        if reference.what == "job_id":
            return str(upstream.id)
        run_id = upstream.mlflow_run_id
        if run_id is None:
            raise ResolutionError(f"{reference}: job {upstream.id} has no MLflow run")
        if reference.what == "run_id":
            return run_id
        if reference.what == "artifact_uri":
            return f"runs:/{run_id}"
        if run_id not in runs:
            try:
                runs[run_id] = await self._mlflow.run(run_id)
            except (NotFound, MlflowRefused) as exc:
                # MLflow not answering is not the stage's fault: that propagates, and the
                # dependency consumer tries again later.
                raise ResolutionError(f"{reference}: MLflow: {exc}") from exc
        data = runs[run_id].get("data", {})
        items = {item["key"]: item["value"] for item in data.get(reference.what, [])}
        if reference.key not in items:
            logged = ", ".join(sorted(items)) or "none"
            noun = "metric" if reference.what == "metrics" else "parameter"
            raise ResolutionError(
                f"{reference}: run {run_id} has no {noun} {reference.key!r} (it has: {logged})"
            )
        value = items[reference.key]
        return _number(value) if reference.what == "metrics" else str(value)
