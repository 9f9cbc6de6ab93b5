"""The ``graph.yaml`` format: parameters, steps calling plugin tasks, and outputs to log.

    parameters:
      eps: {type: float, default: 0.1}
    steps:
      data:   {task: digits.load_digits, inputs: {seed: $seed}}
      train:  {task: digits.train_logistic_regression, inputs: {x: $data.x_train}, retries: 1}
    outputs:
      clean_accuracy: {from: $evaluate.accuracy, kind: metric}

An input value is a literal, ``$param``, ``$step`` or ``$step.field``; lists and mappings may
hold references too. ``$$`` starts a literal string that begins with ``$``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from theodolite.mlproject import ParameterSpec, parse_parameters
from theodolite.problems import Problem, ProblemsError

GRAPH_FILENAME = "graph.yaml"
OutputKind = Literal["metric", "param", "artifact", "figure"]


@dataclass(frozen=True)
class Reference:
    name: str  # a parameter or a step
    field: str | None = None

    def __str__(self) -> str:
        return f"${self.name}" + (f".{self.field}" if self.field else "")


def parse_reference(value: Any) -> Reference | None:
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        return None
    name, _, field = value[1:].partition(".")
    return Reference(name=name, field=field or None)


def literal_value(value: Any) -> Any:
    """A literal as the task sees it (``$$x`` is the string ``$x``), recursively."""
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    if isinstance(value, list):
        return [literal_value(v) for v in value]
    if isinstance(value, dict):
        return {k: literal_value(v) for k, v in value.items()}
    return value


def references_in(value: Any) -> list[Reference]:
    if (reference := parse_reference(value)) is not None:
        return [reference]
    if isinstance(value, list):
        return [r for v in value for r in references_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in references_in(v)]
    return []


class StepSpec(BaseModel):
    model_config = {"extra": "forbid"}

    task: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    retries: int = Field(0, ge=0, le=20)
    depends_on: list[str] = Field(default_factory=list)


class OutputSpec(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    source: str = Field(alias="from")
    kind: OutputKind = "metric"
    path: str | None = None  # artifact/figure file name in the run's artifacts


class GraphSpec(BaseModel):
    """A parsed graph.yaml."""

    name: str | None = None
    # Plugins shipped inside the entry point archive: name -> module beside graph.yaml. They are
    # checked when the graph runs, not at upload (the api cannot import them).
    local_plugins: dict[str, str] = Field(default_factory=dict)
    # Pinned plugin versions, "name==version"; other plugins resolve to their latest version.
    plugins: list[str] = Field(default_factory=list)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    steps: dict[str, StepSpec]
    outputs: dict[str, OutputSpec] = Field(default_factory=dict)


def _pydantic_problems(prefix: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        problems.append(Problem(field=location, message=error["msg"]))
    return problems


def parse_graph(text: str) -> GraphSpec:
    """Parse graph.yaml's structure; raise ProblemsError naming every malformed part."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProblemsError(
            "invalid graph", [Problem(field="graph", message=f"not YAML: {exc}")]
        ) from exc
    if not isinstance(document, dict):
        raise ProblemsError("invalid graph", [Problem(field="graph", message="must be a mapping")])
    problems: list[Problem] = []
    parameters = parse_parameters(document.get("parameters") or {}, "", problems)
    raw_steps = document.get("steps")
    steps: dict[str, StepSpec] = {}
    if not isinstance(raw_steps, dict) or not raw_steps:
        problems.append(Problem(field="steps", message="must map at least one step name to a step"))
    else:
        for name, raw in raw_steps.items():
            if not isinstance(raw, dict):
                problems.append(
                    Problem(field=f"steps.{name}", message="must be a mapping with a task")
                )
                continue
            try:
                steps[str(name)] = StepSpec.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(f"steps.{name}", exc))
    outputs: dict[str, OutputSpec] = {}
    raw_outputs = document.get("outputs") or {}
    if not isinstance(raw_outputs, dict):
        problems.append(Problem(field="outputs", message="must be a mapping"))
    else:
        for name, raw in raw_outputs.items():
            try:
                outputs[str(name)] = OutputSpec.model_validate(
                    raw if isinstance(raw, dict) else {"from": raw}
                )
            except ValidationError as exc:
                problems.extend(_pydantic_problems(f"outputs.{name}", exc))
    local_plugins = document.get("local_plugins") or {}
    if not isinstance(local_plugins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in local_plugins.items()
    ):
        problems.append(
            Problem(field="local_plugins", message="must map plugin names to module names")
        )
        local_plugins = {}
    pins = document.get("plugins") or []
    if not isinstance(pins, list) or not all(
        isinstance(p, str) and re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", p) for p in pins
    ):
        problems.append(Problem(field="plugins", message='must list pins like "data==0.1.0"'))
        pins = []
    if problems:
        raise ProblemsError("invalid graph", problems)
    return GraphSpec(
        name=document.get("name"),
        local_plugins=local_plugins,
        plugins=pins,
        parameters=parameters,
        steps=steps,
        outputs=outputs,
    )


def plugins_used(graph: GraphSpec) -> set[str]:
    """The plugins the graph's steps call, archive-local ones excluded."""
    return {
        step.task.partition(".")[0]
        for step in graph.steps.values()
        if "." in step.task and step.task.partition(".")[0] not in graph.local_plugins
    }


def pinned_versions(graph: GraphSpec) -> dict[str, str]:
    return dict(pin.split("==", 1) for pin in graph.plugins)
