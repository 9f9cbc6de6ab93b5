"""``theodolite run-graph graph.yaml -P name=value``: what a graph entry point's MLproject
command runs. Works inside a job (MLflow run and shared Prefect server from the environment) and
on a laptop with no testbed services (outputs printed and written under ./outputs)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from theodolite.graphs.engine import GraphRun, StepRecord, run_graph
from theodolite.graphs.outputs import write_outputs_locally
from theodolite.graphs.spec import GraphSpec, parse_graph
from theodolite.graphs.validate import validate_graph
from theodolite.mlproject import EntryPointSpec, resolve_parameters, typed_value
from theodolite.problems import ProblemsError
from theodolite.sdk.discovery import TaskFunctions, discover_installed
from theodolite.sdk.protocol import PLUGINS_ENV, RESULT_FILE_ENV


def _say(line: str) -> None:
    print(f"[theodolite] {line}", flush=True)


def _report_problems(title: str, exc: ProblemsError) -> None:
    print(f"{title}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem.field}: {problem.message}", file=sys.stderr)


def _write_result(run: GraphRun | None, failure: str | None, step: StepRecord | None) -> None:
    target = os.environ.get(RESULT_FILE_ENV)
    if not target:
        return
    body = {
        "failed_step": step.name if step else None,
        "error": failure,
        "steps": {r.name: r.status for r in run.steps.values()} if run else {},
    }
    Path(target).write_text(json.dumps(body))


def load_graph(path: Path, plugins: dict[str, str]) -> tuple[GraphSpec, TaskFunctions]:
    graph = parse_graph(path.read_text())
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # local plugins live beside graph.yaml
    pinned = {
        name: Path(found["path"])
        for name, found in json.loads(os.environ.get(PLUGINS_ENV) or "{}").items()
    }
    catalogue, functions, errors = discover_installed({**graph.local_plugins, **plugins}, pinned)
    for name, plugin in sorted(catalogue.plugins.items()):
        _say(f"plugin {name}=={plugin.version}")
    for name, error in errors.items():
        _say(f"plugin {name} could not be loaded: {error}")
    problems = validate_graph(graph, catalogue)
    if problems:
        raise ProblemsError("invalid graph", problems)
    return graph, functions


def run_graph_file(path: Path, raw_params: dict[str, str], plugins: dict[str, str]) -> int:
    """Validate and run; the exit status is 0 when every step succeeded."""
    try:
        graph, functions = load_graph(path, plugins)
        declared = EntryPointSpec(command="-", parameters=graph.parameters)
        resolved = resolve_parameters(declared, raw_params)
    except ProblemsError as exc:
        _report_problems(exc.title, exc)
        _write_result(None, str(exc), None)
        return 2
    params = {k: typed_value(graph.parameters[k].type, v) for k, v in resolved.items()}
    seed = int(params.get("seed", 0))
    job_id = os.environ.get("THEODOLITE_JOB_ID")
    flow_run_name = f"job-{job_id}" if job_id else f"local-{path.parent.resolve().name}"
    _say(f"running graph {graph.name or path.name}: {len(graph.steps)} steps, params {resolved}")

    def on_step(record: StepRecord, finished: int, total: int) -> None:
        _say(
            f"step {record.name} {record.status} in {record.duration_s or 0:.2f}s "
            f"({finished}/{total})"
        )

    run = run_graph(
        graph,
        params,
        functions,
        flow_run_name=flow_run_name,
        seed=seed,
        job_id=job_id,
        mlflow_run_id=os.environ.get("MLFLOW_RUN_ID"),
        on_step=on_step,
    )
    failed = run.failed_step
    if failed is not None:
        print(failed.traceback or "", file=sys.stderr, end="")
        message = f"step '{failed.name}' ({failed.task}) failed: {failed.error}"
        _say(message)
        _write_result(run, message, failed)
        return 1
    if not os.environ.get("MLFLOW_RUN_ID"):
        for line in write_outputs_locally(graph, run.results, Path("outputs")):
            _say(line)
    _write_result(run, None, None)
    _say("graph succeeded")
    return 0
