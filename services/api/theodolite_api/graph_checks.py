"""Graph entry points: their graph.yaml checked against the current task catalogue."""

from __future__ import annotations

from typing import Any

from theodolite.graphs.spec import parse_graph
from theodolite.graphs.validate import validate_graph
from theodolite.problems import Problem, ProblemsError
from theodolite.sdk.discovery import Catalogue


def graph_problems(
    graph_text: str, catalogue: Catalogue
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """(the parsed graph as JSON, every problem with fields prefixed ``graph.``)."""
    try:
        graph = parse_graph(graph_text)
    except ProblemsError as exc:
        return None, [Problem(field=f"graph.{p.field}", message=p.message) for p in exc.problems]
    problems = validate_graph(graph, catalogue)
    described = graph.model_dump(mode="json", by_alias=True)
    return described, [Problem(field=f"graph.{p.field}", message=p.message) for p in problems]
