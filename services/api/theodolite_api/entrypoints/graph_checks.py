"""Graph entry points: graph.yaml checked against the tasks jobs would get now (the registry's
resolved versions, else the plugins installed where workers run), and the versions to pin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.events import PluginPin
from theodolite.graphs.spec import parse_graph, pinned_versions, plugins_used
from theodolite.graphs.validate import validate_graph
from theodolite.problems import Problem, ProblemsError
from theodolite.sdk.discovery import PluginSpec
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.repositories import plugins as plugin_repo


@dataclass
class GraphCheck:
    spec: dict[str, Any] | None  # the parsed graph as JSON; None when it does not parse
    problems: list[Problem] = field(default_factory=list)  # fields prefixed "graph."
    pins: dict[str, PluginPin] = field(default_factory=dict)


def _prefixed(problems: list[Problem]) -> list[Problem]:
    return [Problem(field=f"graph.{p.field}", message=p.message) for p in problems]


async def check_graph(
    graph_text: str, *, session: AsyncSession, registry: RegistryClient
) -> GraphCheck:
    try:
        graph = parse_graph(graph_text)
    except ProblemsError as exc:
        return GraphCheck(spec=None, problems=_prefixed(exc.problems))
    used = plugins_used(graph)
    catalogue = await plugin_repo.catalogue(session=session)  # installed where workers run
    resolved, problems = await registry.resolve(used, pinned_versions(graph))
    pins: dict[str, PluginPin] = {}
    for name, found in resolved.items():
        catalogue.plugins[name] = PluginSpec(
            name=name, version=found["version"], module=found["module"], tasks=found["tasks"]
        )
        pins[name] = PluginPin(
            version=found["version"],
            source="registry",
            wheel_key=found["wheel_key"],
            wheel_sha256=found["wheel_sha256"],
        )
    for name in used - set(resolved):
        if name in catalogue.plugins and not any(p.field == f"plugins.{name}" for p in problems):
            pins[name] = PluginPin(version=catalogue.plugins[name].version, source="installed")
    problems = problems + validate_graph(graph, catalogue)
    return GraphCheck(
        spec=graph.model_dump(mode="json", by_alias=True), problems=_prefixed(problems), pins=pins
    )
