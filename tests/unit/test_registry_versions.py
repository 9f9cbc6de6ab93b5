from theodolite_registry.repositories.plugins import latest, version_key

from tests.fixtures.registry import plugin_version
from theodolite.db.registry_tables import PluginVersion
from theodolite.graphs.spec import parse_graph, pinned_versions, plugins_used


def _row(name: str, version: str, status: str = "published") -> PluginVersion:
    return plugin_version(name, version, status=status)


def test_latest_is_the_highest_published_version_not_the_newest_string() -> None:
    rows = [_row("a", "1.9.0"), _row("a", "1.10.0"), _row("a", "2.0.0", "yanked"), _row("b", "0.1")]
    found = latest(rows)
    assert found["a"].version == "1.10.0"
    assert found["b"].version == "0.1"
    assert version_key("1.10.0") > version_key("1.9.0")


def test_every_version_yanked_means_no_latest() -> None:
    assert latest([_row("a", "1.0", "yanked")]) == {}


def test_graph_pins_and_used_plugins() -> None:
    graph = parse_graph(
        "local_plugins: {mine: my_tasks}\nplugins: ['data==0.2.0']\n"
        "steps:\n  a: {task: data.load_digits}\n  b: {task: mine.x}\n  c: {task: models.fit}\n"
    )
    assert plugins_used(graph) == {"data", "models"}
    assert pinned_versions(graph) == {"data": "0.2.0"}
