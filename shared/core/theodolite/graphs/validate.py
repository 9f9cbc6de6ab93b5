"""Static validation of a graph against the task catalogue: every problem at once, each with
the step and field it concerns. Works on contracts only (no plugin is imported), so the api can
run it at upload and submission."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from theodolite.graphs.spec import (
    GraphSpec,
    Reference,
    literal_value,
    parse_reference,
    references_in,
)
from theodolite.mlproject import ParameterSpec
from theodolite.problems import Problem
from theodolite.sdk.discovery import Catalogue
from theodolite.sdk.schema import TaskSpec, ValueType

# The JSON type of each MLproject parameter type, to check a $param against a task input.
_PARAMETER_JSON_TYPES = {"float": "number", "int": "integer"}


def _json_types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema admits, or None when it does not say simply."""
    if "type" in schema:
        declared = schema["type"]
        return set(declared) if isinstance(declared, list) else {declared}
    if "anyOf" in schema:
        collected: set[str] = set()
        for option in schema["anyOf"]:
            inner = _json_types(option)
            if inner is None:
                return None
            collected |= inner
        return collected
    return None


def _fits(source: ValueType, target: ValueType) -> str | None:
    """Why a value of type ``source`` cannot feed ``target``, or None."""
    if source.is_any or target.is_any:
        return None
    if target.opaque is not None or source.opaque is not None:
        if target.accepts(source):
            return None
        return f"gives {source.describe()}, but the input expects {target.describe()}"
    assert source.json_schema is not None and target.json_schema is not None
    wanted, given = _json_types(target.json_schema), _json_types(source.json_schema)
    if wanted is None or given is None:
        return None
    if "number" in wanted:
        wanted = wanted | {"integer"}
    if given <= wanted:
        return None
    return f"gives {'/'.join(sorted(given))}, but the input expects {'/'.join(sorted(wanted))}"


def _literal_problem(value: Any, target: ValueType) -> str | None:
    if target.opaque is not None:
        return f"expects {target.opaque}, which only another step's output can give"
    if not target.json_schema:
        return None
    errors = sorted(Draft202012Validator(target.json_schema).iter_errors(value), key=str)
    if errors:
        return f"{value!r} does not fit the input's type: {errors[0].message}"
    return None


class _Checker:
    def __init__(self, graph: GraphSpec, catalogue: Catalogue) -> None:
        self.graph = graph
        self.catalogue = catalogue
        self.problems: list[Problem] = []
        self.tasks: dict[str, TaskSpec] = {}

    def add(self, field: str, message: str) -> None:
        self.problems.append(Problem(field=field, message=message))

    def run(self) -> list[Problem]:
        for name in set(self.graph.parameters) & set(self.graph.steps):
            self.add(
                f"steps.{name}", f"'{name}' is both a parameter and a step: $ {name} is ambiguous"
            )
        for name, step in self.graph.steps.items():
            task = self.catalogue.task(step.task)
            if task is None and step.task.partition(".")[0] in self.graph.local_plugins:
                continue  # shipped in the archive: checked when the graph runs
            if task is None:
                plugin = step.task.partition(".")[0]
                if "." not in step.task:
                    self.add(f"steps.{name}.task", f"'{step.task}' is not <plugin>.<task>")
                elif plugin not in self.catalogue.plugins:
                    known = ", ".join(sorted(self.catalogue.plugins)) or "none"
                    self.add(f"steps.{name}.task", f"unknown plugin '{plugin}' (known: {known})")
                else:
                    self.add(
                        f"steps.{name}.task",
                        f"plugin '{plugin}' has no task '{step.task.partition('.')[2]}'",
                    )
                continue
            self.tasks[name] = task
        for name, step in self.graph.steps.items():
            self._check_step(name, step.inputs, step.depends_on)
        self._check_cycles()
        for name, output in self.graph.outputs.items():
            self._check_output(name, output.source, output.kind)
        return self.problems

    def _reference_type(self, reference: Reference, where: str) -> ValueType | None | bool:
        """The referenced value's type; None when unknown (already reported); True when any."""
        if reference.name in self.graph.parameters and reference.field is None:
            parameter: ParameterSpec = self.graph.parameters[reference.name]
            return ValueType(
                json_schema={"type": _PARAMETER_JSON_TYPES.get(parameter.type, "string")}
            )
        if reference.name not in self.graph.steps:
            self.add(where, f"{reference} refers to no parameter or step")
            return None
        task = self.tasks.get(reference.name)
        if task is None:
            return True  # the step's own problem is reported already
        if reference.field is None:
            return task.output
        if reference.field not in task.output.fields:
            fields = ", ".join(task.output.fields) or "none"
            self.add(
                where,
                f"step '{reference.name}' has no output '{reference.field}' (outputs: {fields})",
            )
            return None
        return task.output.fields[reference.field]

    def _check_value(self, value: Any, target: ValueType, where: str) -> None:
        reference = parse_reference(value)
        if reference is not None:
            source = self._reference_type(reference, where)
            if isinstance(source, ValueType) and (why := _fits(source, target)) is not None:
                self.add(where, f"{reference} {why}")
            return
        if references_in(value):
            for nested in references_in(value):  # literal containers of references: check names
                self._reference_type(nested, where)
            return
        if (why := _literal_problem(literal_value(value), target)) is not None:
            self.add(where, why)

    def _check_step(self, name: str, inputs: dict[str, Any], depends_on: list[str]) -> None:
        for dependency in depends_on:
            if dependency not in self.graph.steps:
                self.add(f"steps.{name}.depends_on", f"unknown step '{dependency}'")
        task = self.tasks.get(name)
        if task is None:
            for input_name, value in inputs.items():
                for reference in references_in(value):
                    self._reference_type(reference, f"steps.{name}.inputs.{input_name}")
            return
        for input_name in inputs.keys() - task.inputs.keys():
            declared = ", ".join(task.inputs) or "none"
            self.add(
                f"steps.{name}.inputs.{input_name}",
                f"unknown input of {task.name} (inputs: {declared})",
            )
        for input_name, spec in task.inputs.items():
            where = f"steps.{name}.inputs.{input_name}"
            if input_name not in inputs:
                if spec.required:
                    self.add(where, f"required input of {task.name} is missing ({spec.describe()})")
                continue
            self._check_value(inputs[input_name], spec, where)

    def _check_output(self, name: str, source: str, kind: str) -> None:
        where = f"outputs.{name}.from"
        reference = parse_reference(source)
        if reference is None:
            self.add(where, f"{source!r} is not a $step or $step.field reference")
            return
        found = self._reference_type(reference, where)
        if kind == "metric" and isinstance(found, ValueType) and found.opaque is not None:
            self.add(
                where,
                f"a metric needs a number or a mapping of numbers, {reference} is {found.opaque}",
            )

    def _check_cycles(self) -> None:
        edges = {name: self.dependencies(name) for name in self.graph.steps}
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(node: str) -> None:
            state[node] = 1
            stack.append(node)
            for nxt in sorted(edges[node]):
                if state.get(nxt) == 1:
                    cycle = stack[stack.index(nxt) :] + [nxt]
                    self.add(f"steps.{nxt}", "cycle: " + " -> ".join(cycle))
                elif nxt not in state:
                    visit(nxt)
            stack.pop()
            state[node] = 2

        for node in self.graph.steps:
            if node not in state:
                visit(node)

    def dependencies(self, name: str) -> set[str]:
        step = self.graph.steps[name]
        found = {r.name for v in step.inputs.values() for r in references_in(v)}
        return (found | set(step.depends_on)) & set(self.graph.steps)


def validate_graph(graph: GraphSpec, catalogue: Catalogue) -> list[Problem]:
    """Every problem of the graph against the catalogue; empty when it can run."""
    return _Checker(graph, catalogue).run()


def step_dependencies(graph: GraphSpec) -> dict[str, set[str]]:
    checker = _Checker(graph, Catalogue())
    return {name: checker.dependencies(name) for name in graph.steps}
