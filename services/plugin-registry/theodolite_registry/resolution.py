"""Which plugin versions a new job gets: pinned ones if usable, else the latest published.

Pure functions of the catalogue rows, so the rules are tested without a database.
"""

from __future__ import annotations

from theodolite.db.registry_tables import PluginVersion
from theodolite.problems import Problem
from theodolite_registry.repositories.plugins import latest
from theodolite_registry.schemas.plugins import ResolvedPlugin, ResolveRequest, ResolveResponse

# What a worker needs to fetch and load a version; the rest of the row is the catalogue's.
RESOLVED_FIELDS = {"version", "module", "wheel_key", "wheel_sha256", "tasks"}


def resolved(row: PluginVersion) -> ResolvedPlugin:
    return ResolvedPlugin(**row.model_dump(include=RESOLVED_FIELDS))


def resolve(rows: list[PluginVersion], request: ResolveRequest) -> ResolveResponse:
    """The versions for the plugins a job uses, or a problem per unusable pin."""
    newest = latest(rows)
    by_key = {(r.name, r.version): r for r in rows}
    found: dict[str, ResolvedPlugin] = {}
    problems: list[Problem] = []
    for name in sorted(set(request.plugins) | set(request.pins)):
        pinned = request.pins.get(name)
        row = by_key.get((name, pinned)) if pinned else newest.get(name)
        if pinned and row is None:
            if any(r.name == name for r in rows):
                problems.append(
                    Problem(field=f"plugins.{name}", message=f"no version {pinned} of {name}")
                )
            continue
        if row is None:
            continue  # not in the registry: perhaps installed where workers run
        if row.status == "yanked":
            problems.append(
                Problem(field=f"plugins.{name}", message=f"{name}=={row.version} is yanked")
            )
            continue
        found[name] = resolved(row)
    return ResolveResponse(resolved=found, problems=problems)


def catalogue(rows: list[PluginVersion]) -> dict[str, ResolvedPlugin]:
    """The latest published version of every plugin, by name."""
    return {name: resolved(row) for name, row in sorted(latest(rows).items())}
