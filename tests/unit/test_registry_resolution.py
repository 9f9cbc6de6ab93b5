"""Which plugin versions a new job gets: pins if usable, else the latest published version."""

from __future__ import annotations

from theodolite_registry.resolution import catalogue, resolve
from theodolite_registry.schemas.plugins import ResolveRequest

from tests.fixtures.registry import plugin_version
from theodolite.db.registry_tables import PluginVersion


def _row(name: str, version: str, status: str = "published") -> PluginVersion:
    return plugin_version(
        name,
        version,
        wheel_key=f"wheels/{name}-{version}.whl",
        module=name,
        tasks={"t": {}},
        status=status,
    )


ROWS = [_row("a", "1.0"), _row("a", "1.10"), _row("a", "2.0", "yanked"), _row("b", "0.1")]


def test_the_latest_published_version_unless_pinned() -> None:
    answer = resolve(ROWS, ResolveRequest(plugins=["a", "b"], pins={"b": "0.1"}))
    assert {n: r.version for n, r in answer.resolved.items()} == {"a": "1.10", "b": "0.1"}
    assert answer.resolved["a"].wheel_key == "wheels/a-1.10.whl"
    assert answer.problems == []


def test_a_yanked_or_unknown_pin_is_a_problem_and_an_unknown_plugin_is_left_out() -> None:
    answer = resolve(ROWS, ResolveRequest(plugins=["elsewhere"], pins={"a": "2.0", "b": "9"}))
    assert answer.resolved == {}
    assert [(p.field, p.message) for p in answer.problems] == [
        ("plugins.a", "a==2.0 is yanked"),
        ("plugins.b", "no version 9 of b"),
    ]


def test_the_catalogue_is_the_latest_published_version_of_each_plugin() -> None:
    assert {n: r.version for n, r in catalogue(ROWS).items()} == {"a": "1.10", "b": "0.1"}
