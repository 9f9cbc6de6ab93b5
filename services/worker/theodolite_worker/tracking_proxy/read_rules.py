"""The reads a job may make through its proxy: runs, metrics and searches of its readable
experiments (the base the write rules in ``rules`` build on)."""

from __future__ import annotations

from typing import Any

from theodolite_worker.tracking_proxy.scope import (
    Forward,
    JobScope,
    Lookup,
    OwnedModels,
    Query,
    Refusal,
    TrackingRequest,
    Verdict,
    denied,
    invalid,
)


def _single(query: Query, key: str) -> str | None | Refusal:
    values = [value for name, value in query if name == key]
    if len(values) > 1:
        return invalid(f"{key} given {len(values)} times")
    return values[0] if values else None


class ReadRules:
    """One job's scope, what MLflow says about it, and the reads it allows."""

    def __init__(self, scope: JobScope, lookup: Lookup, owned: OwnedModels | None = None) -> None:
        self.scope = scope
        self.lookup = lookup
        self.owned = owned or OwnedModels()

    def _run_named(self, fields: dict[str, Any]) -> str | Refusal:
        """The run a body or query names through ``run_id`` and/or ``run_uuid`` (must agree)."""
        given = [fields[key] for key in ("run_id", "run_uuid") if key in fields]
        if not given:
            return invalid("run_id is required")
        if not all(isinstance(run, str) for run in given) or len(set(given)) > 1:
            return invalid("run_id and run_uuid must be one string")
        return str(given[0])

    async def _readable_run(self, run: str) -> bool:
        if run == self.scope.run_id:
            return True
        return await self.lookup.run_experiment(run) in self.scope.readable_experiments

    async def _read_run(self, request: TrackingRequest) -> Verdict:
        keys = [key for key, _ in request.query if key in ("run_id", "run_uuid")]
        if len(keys) != len(set(keys)):
            return invalid("run_id given more than once")
        run = self._run_named(dict(request.query))
        if isinstance(run, Refusal):
            return run
        if not await self._readable_run(run):
            return denied(f"run {run} is not in an experiment this job may read")
        return Forward(request.path, query=request.query)

    async def _read_runs(self, request: TrackingRequest) -> Verdict:
        runs = [value for key, value in request.query if key == "run_ids"]
        if not runs:
            return invalid("run_ids is required")
        for run in runs:
            if not await self._readable_run(run):
                return denied(f"run {run} is not in an experiment this job may read")
        return Forward(request.path, query=request.query)

    async def _read_experiment(self, request: TrackingRequest) -> Verdict:
        experiment = _single(request.query, "experiment_id")
        if isinstance(experiment, Refusal):
            return experiment
        if experiment not in self.scope.readable_experiments:
            return denied(f"experiment {experiment} is not one this job may read")
        return Forward(request.path, query=request.query)

    async def _read_experiment_by_name(self, request: TrackingRequest) -> Verdict:
        name = _single(request.query, "experiment_name")
        if isinstance(name, Refusal):
            return name
        if name is None or await self.lookup.experiment_id_by_name(name) not in (
            self.scope.readable_experiments
        ):
            return denied(f"experiment {name!r} is not one this job may read")
        return Forward(request.path, query=request.query)

    async def _search_in_readable(self, request: TrackingRequest) -> Verdict:
        body = request.body or {}
        experiments = body.get("experiment_ids")
        if not isinstance(experiments, list) or not experiments:
            return denied("a search must name the experiments it reads (experiment_ids)")
        if not all(isinstance(experiment, str) for experiment in experiments):
            return invalid("experiment_ids must be strings")
        outside = [e for e in experiments if e not in self.scope.readable_experiments]
        if outside:
            return denied(f"experiments {outside} are not ones this job may read")
        return Forward(request.path, body=body)

    async def _forward_query(self, request: TrackingRequest) -> Verdict:
        return Forward(request.path, query=request.query)

    async def _forward_body(self, request: TrackingRequest) -> Verdict:
        return Forward(request.path, body=request.body or {})
