"""Runs a validated graph as a Prefect flow: one task run per step, independent steps
concurrently, retries honoured, results passed in memory. Step durations and statuses, and the
graph's declared outputs, go to the job's MLflow run."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError

from theodolite.graphs.outputs import log_outputs, log_step_records
from theodolite.graphs.spec import (
    GraphSpec,
    StepSpec,
    literal_value,
    parse_reference,
    references_in,
)
from theodolite.graphs.validate import step_dependencies
from theodolite.sdk.context import TaskContext, activate, deactivate


class StepInputError(ValueError):
    """A value that reached a task does not fit the task's declared input."""


@dataclass
class StepRecord:
    name: str
    task: str
    status: str = "pending"
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    traceback: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass
class GraphRun:
    steps: dict[str, StepRecord]
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_step(self) -> StepRecord | None:
        failed = [r for r in self.steps.values() if r.status == "failed"]
        return min(failed, key=lambda r: r.ended_at or 0.0) if failed else None

    @property
    def succeeded(self) -> bool:
        return all(r.status == "succeeded" for r in self.steps.values())


def topological_order(graph: GraphSpec) -> list[str]:
    dependencies = step_dependencies(graph)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(dependencies):
        ready = [s for s in graph.steps if s not in done and dependencies[s] <= done]
        if not ready:
            raise ValueError("the graph has a cycle")  # validation reports it first
        order.extend(ready)
        done.update(ready)
    return order


def _resolve(value: Any, params: dict[str, Any], upstream: dict[str, Any]) -> Any:
    reference = parse_reference(value)
    if reference is not None:
        if reference.name in params and reference.name not in upstream:
            return params[reference.name]
        result = upstream[reference.name]
        if reference.field is None:
            return result
        if isinstance(result, dict):
            return result[reference.field]
        return getattr(result, reference.field)
    if isinstance(value, list):
        return [_resolve(v, params, upstream) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, params, upstream) for k, v in value.items()}
    return literal_value(value)


def _checked_inputs(
    task_name: str, fn: Callable[..., Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Coerce JSON-typed inputs to their hints; name the task and input when one does not fit."""
    hints = get_type_hints(fn)
    checked = dict(kwargs)
    for name, value in kwargs.items():
        hint = hints.get(name)
        if hint is None:
            continue
        try:
            adapter = TypeAdapter(hint)
        except Exception:  # opaque types: the task checks them itself
            continue
        try:
            checked[name] = adapter.validate_python(value)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise StepInputError(
                f"task {task_name}, input '{name}': {message} (got {value!r:.80})"
            ) from None
    return checked


def _step_callable(
    name: str,
    step: StepSpec,
    fn: Callable[..., Any],
    params: dict[str, Any],
    record: StepRecord,
    context: Callable[[str], TaskContext],
) -> Callable[..., Any]:
    def run_step(**upstream: Any) -> Any:
        token = activate(context(name))
        record.attempts += 1
        record.started_at = record.started_at or time.time()
        record.status = "running"
        try:
            kwargs = {k: _resolve(v, params, upstream) for k, v in step.inputs.items()}
            result = fn(**_checked_inputs(step.task, fn, kwargs))
        except BaseException as exc:
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            record.traceback = traceback.format_exc()
            raise
        else:
            record.status = "succeeded"
            return result
        finally:
            record.ended_at = time.time()
            deactivate(token)

    run_step.__name__ = run_step.__qualname__ = name
    return run_step


def run_graph(
    graph: GraphSpec,
    params: dict[str, Any],
    functions: dict[str, Callable[..., Any]],
    *,
    flow_run_name: str,
    seed: int,
    job_id: str | None = None,
    mlflow_run_id: str | None = None,
    on_step: Callable[[StepRecord, int, int], None] | None = None,
) -> GraphRun:
    """Run ``graph`` with typed ``params``; never raises for a failing step (see GraphRun)."""
    from prefect import flow
    from prefect import task as prefect_task
    from prefect.cache_policies import NO_CACHE

    order = topological_order(graph)
    dependencies = step_dependencies(graph)
    records = {name: StepRecord(name=name, task=graph.steps[name].task) for name in order}
    run = GraphRun(steps=records)

    def context(step: str) -> TaskContext:
        return TaskContext(step=step, seed=seed, job_id=job_id, mlflow_run_id=mlflow_run_id)

    prefect_tasks = {
        # The decorator form: Prefect types no overload for a function and options in one call.
        name: prefect_task(
            name=name,
            retries=graph.steps[name].retries,
            retry_delay_seconds=0,
            cache_policy=NO_CACHE,
            persist_result=False,
        )(
            _step_callable(
                name,
                graph.steps[name],
                functions[graph.steps[name].task],
                params,
                records[name],
                context,
            )
        )
        for name in order
    }

    @flow(
        name=graph.name or "theodolite-graph",
        flow_run_name=flow_run_name,
        persist_result=False,
        validate_parameters=False,
    )
    def graph_flow() -> dict[str, Any]:
        futures: dict[str, Any] = {}
        for name in order:
            step = graph.steps[name]
            data_inputs = {r for v in step.inputs.values() for r in _step_refs(v, graph)}
            upstream = {dep: futures[dep] for dep in sorted(data_inputs)}
            waits = [futures[dep] for dep in sorted(dependencies[name] - data_inputs)]
            futures[name] = prefect_tasks[name].submit(**upstream, wait_for=waits)
        results = {}
        for finished, name in enumerate(order, start=1):
            results[name] = futures[name].result()  # raises: the flow run ends Failed in Prefect
            if on_step is not None:
                on_step(records[name], finished, len(order))
        return results

    state = graph_flow(return_state=True)
    if state.is_completed():
        run.results = state.result()
    for record in records.values():
        if record.status in {"pending", "running"}:
            record.status = "skipped" if record.status == "pending" else "failed"
    if mlflow_run_id is not None:
        log_step_records(records.values(), mlflow_run_id)
        if run.succeeded:
            log_outputs(graph, run.results, mlflow_run_id)
    return run


def _step_refs(value: Any, graph: GraphSpec) -> set[str]:
    return {r.name for r in references_in(value) if r.name in graph.steps}
