"""Every example is a valid graph entry point against the installed plugins: its MLproject
command runs its graph with every parameter, and it exposes size knobs for quick runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from theodolite.graphs.spec import parse_graph
from theodolite.graphs.validate import validate_graph
from theodolite.mlproject import parse_mlproject
from theodolite.sdk.discovery import Catalogue, discover_installed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LIBRARY = [
    "evasion-curve",
    "defences",
    "backdoor-poisoning",
    "membership-inference",
    "model-extraction",
    "adversarial-training",
]
SIZE_KNOBS = {"train_size", "test_size", "epochs", "max_iter", "thief_epochs", "pgd_iter"}


@cache
def catalogue() -> Catalogue:
    found, _, errors = discover_installed()
    assert not errors, errors
    return found


@pytest.mark.parametrize("name", [*LIBRARY, "digits-evasion"])
def test_library_example_graphs_are_valid(name: str) -> None:
    folder = EXAMPLES / name
    graph = parse_graph((folder / "graph.yaml").read_text())
    assert validate_graph(graph, catalogue()) == []
    project = parse_mlproject((folder / "MLproject").read_text())
    main = project.entry_points["main"]
    assert set(main.parameters) == set(graph.parameters)
    for parameter in main.parameters:
        assert f"-P {parameter}={{{parameter}}}" in main.command
    assert (folder / "README.md").is_file()
    assert not (folder / "outputs").exists(), "local run outputs would be packed into the archive"


@pytest.mark.parametrize("name", LIBRARY)
def test_library_examples_have_size_knobs_and_log_figures_and_a_report(name: str) -> None:
    graph = yaml.safe_load((EXAMPLES / name / "graph.yaml").read_text())
    assert set(graph["parameters"]) & SIZE_KNOBS
    kinds = {output["kind"] for output in graph["outputs"].values()}
    assert {"metric", "figure", "artifact"} <= kinds
    assert graph["outputs"]["report"]["path"] == "report.html"
