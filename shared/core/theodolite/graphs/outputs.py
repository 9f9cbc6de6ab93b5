"""Logging a graph run to MLflow: each step's duration and status, and the declared outputs."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from theodolite.graphs.spec import GraphSpec, parse_reference

if TYPE_CHECKING:
    from theodolite.graphs.engine import StepRecord


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def log_step_records(records: Iterable[StepRecord], run_id: str) -> None:
    from mlflow.entities import Metric, RunTag

    now = 0
    metrics, tags = [], []
    for record in records:
        tags.append(RunTag(f"theodolite.step.{record.name}.status", record.status))
        tags.append(RunTag(f"theodolite.step.{record.name}.attempts", str(record.attempts)))
        if record.duration_s is not None:
            now = int((record.ended_at or 0) * 1000)
            metrics.append(Metric(f"step.{record.name}.duration_s", record.duration_s, now, 0))
    _client().log_batch(run_id, metrics=metrics, tags=tags)


def _numbers(prefix: str, value: Any) -> list[tuple[str, float, int]]:
    """(key, value, step) for a number, a list of numbers, or a nested mapping of them."""
    if isinstance(value, bool):
        return [(prefix, float(value), 0)]
    if isinstance(value, (int, float)):
        return [(prefix, float(value), 0)]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return [(prefix, float(value.item()), 0)]
    if isinstance(value, dict):
        return [m for k, v in value.items() for m in _numbers(f"{prefix}.{k}", v)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return [(prefix, float(v), step) for step, v in enumerate(value)]
    raise TypeError(f"output '{prefix}' is {type(value).__name__}, not a number or numbers")


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, Path):
        return value.read_bytes()
    return json.dumps(value, indent=2, default=str).encode()


def _figure_png(value: Any) -> bytes:
    if isinstance(value, (bytes, Path)):
        return _bytes_of(value)
    buffer = io.BytesIO()
    value.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def resolve_output(source: str, results: dict[str, Any]) -> Any:
    reference = parse_reference(source)
    assert reference is not None
    value = results[reference.name]
    if reference.field is None:
        return value
    return value[reference.field] if isinstance(value, dict) else getattr(value, reference.field)


def write_outputs_locally(graph: GraphSpec, results: dict[str, Any], folder: Path) -> list[str]:
    """Without an MLflow run: files under ``folder``, and a line to print per output."""
    lines = []
    for name, output in graph.outputs.items():
        value = resolve_output(output.source, results)
        if output.kind in {"metric", "param"}:
            lines.append(f"{output.kind} {name} = {value!r:.200}")
            continue
        data = _figure_png(value) if output.kind == "figure" else _bytes_of(value)
        target = folder / (output.path or (f"{name}.png" if output.kind == "figure" else name))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        lines.append(f"{output.kind} {name} -> {target}")
    return lines


def log_outputs(graph: GraphSpec, results: dict[str, Any], run_id: str) -> None:
    client = _client()
    for name, output in graph.outputs.items():
        value = resolve_output(output.source, results)
        if output.kind == "metric":
            for key, number, step in _numbers(name, value):
                client.log_metric(run_id, key, number, step=step)
        elif output.kind == "param":
            client.log_param(
                run_id, name, value if isinstance(value, str) else json.dumps(value, default=str)
            )
        else:
            data = _figure_png(value) if output.kind == "figure" else _bytes_of(value)
            default_name = f"{name}.png" if output.kind == "figure" else name
            path = output.path or default_name
            folder, _, filename = path.rpartition("/")
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / filename
                target.write_bytes(data)
                client.log_artifact(run_id, str(target), folder or None)
