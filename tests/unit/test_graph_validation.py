import pytest

from theodolite.graphs.engine import topological_order
from theodolite.graphs.spec import parse_graph
from theodolite.graphs.validate import validate_graph
from theodolite.problems import ProblemsError
from theodolite.sdk.discovery import Catalogue, discover_installed


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    found, _, errors = discover_installed({"testing": "tests.fixtures.graph_tasks"})
    assert not errors
    return found


def problems_of(text: str, catalogue: Catalogue) -> dict[str, str]:
    return {p.field: p.message for p in validate_graph(parse_graph(text), catalogue)}


DIAMOND = """
parameters: {x: {type: float, default: 2}}
steps:
  src: {task: testing.source, inputs: {x: $x}}
  left: {task: testing.slow_add, inputs: {value: $src.a, delay: 0.1}}
  right: {task: testing.slow_add, inputs: {value: $src.b}}
  sum: {task: testing.total, inputs: {items: [$left, $right]}}
outputs:
  total: {from: $sum, kind: metric}
"""


def test_a_valid_graph_has_no_problems_and_a_topological_order(catalogue: Catalogue) -> None:
    assert problems_of(DIAMOND, catalogue) == {}
    order = topological_order(parse_graph(DIAMOND))
    assert order[0] == "src" and order[-1] == "sum"


@pytest.mark.parametrize(
    ("steps", "field", "message"),
    [
        ("a: {task: nope.thing}", "steps.a.task", "unknown plugin 'nope'"),
        ("a: {task: testing.nothing}", "steps.a.task", "has no task 'nothing'"),
        ("a: {task: justaname}", "steps.a.task", "not <plugin>.<task>"),
        (
            "a: {task: testing.source, inputs: {y: 1}}",
            "steps.a.inputs.y",
            "unknown input of source",
        ),
        (
            "a: {task: testing.slow_add}",
            "steps.a.inputs.value",
            "required input of slow_add is missing",
        ),
        (
            "a: {task: testing.slow_add, inputs: {value: $ghost}}",
            "steps.a.inputs.value",
            "$ghost refers to no parameter or step",
        ),
        (
            "a: {task: testing.slow_add, inputs: {value: 'fast'}}",
            "steps.a.inputs.value",
            "'fast' is not of type 'number'",
        ),
        (
            "a: {task: testing.norm, inputs: {values: [1, 2]}}",
            "steps.a.inputs.values",
            "expects numpy.ndarray",
        ),
        (
            "s: {task: testing.source}\n  a: {task: testing.slow_add, inputs: {value: $s.c}}",
            "steps.a.inputs.value",
            "has no output 'c'",
        ),
        (
            "s: {task: testing.source}\n  a: {task: testing.norm, inputs: {values: $s.a}}",
            "steps.a.inputs.values",
            "gives number, but the input expects numpy.ndarray",
        ),
        (
            "s: {task: testing.array}\n  a: {task: testing.slow_add, inputs: {value: $s}}",
            "steps.a.inputs.value",
            "gives numpy.ndarray",
        ),
        ("a: {task: testing.source, depends_on: [zz]}", "steps.a.depends_on", "unknown step 'zz'"),
        (
            "a: {task: testing.total, inputs: {items: [$b]}}\n  b: {task: testing.flaky, inputs: {value: $a}}",
            "steps.a",
            "cycle: a -> b -> a",
        ),
    ],
)
def test_each_problem_is_named_at_its_location(
    catalogue: Catalogue, steps: str, field: str, message: str
) -> None:
    problems = problems_of(f"steps:\n  {steps}\n", catalogue)
    assert field in problems, problems
    assert message in problems[field]


def test_parameter_types_are_checked_against_inputs(catalogue: Catalogue) -> None:
    text = "parameters: {s: string, n: int}\nsteps:\n  a: {task: testing.slow_add, inputs: {value: $s, delay: $n}}\n"
    assert problems_of(text, catalogue) == {
        "steps.a.inputs.value": "$s gives string, but the input expects number/integer"[0:0]
        + problems_of(text, catalogue)["steps.a.inputs.value"]
    }
    assert "gives string" in problems_of(text, catalogue)["steps.a.inputs.value"]


def test_several_problems_are_reported_at_once(catalogue: Catalogue) -> None:
    text = """
steps:
  a: {task: nope.x}
  b: {task: testing.slow_add, inputs: {value: 'x', extra: 1}}
  c: {task: testing.source, inputs: {x: $missing}}
outputs:
  m: {from: $zz, kind: metric}
"""
    assert set(problems_of(text, catalogue)) == {
        "steps.a.task",
        "steps.b.inputs.value",
        "steps.b.inputs.extra",
        "steps.c.inputs.x",
        "outputs.m.from",
    }


def test_local_plugins_are_left_to_run_time(catalogue: Catalogue) -> None:
    text = "local_plugins: {mine: my_tasks}\nsteps:\n  a: {task: mine.anything, inputs: {whatever: 1}}\n  b: {task: testing.slow_add, inputs: {value: $a}}\n"
    assert problems_of(text, catalogue) == {}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("steps: []", "steps"),
        ("steps:\n  a: {task: t.x, retries: -1}", "steps.a.retries"),
        ("steps:\n  a: {task: t.x, colour: red}", "steps.a.colour"),
        ("steps:\n  a: {task: t.x}\noutputs:\n  m: {from: $a, kind: movie}", "outputs.m.kind"),
        ("parameters: {p: {type: tensor}}\nsteps:\n  a: {task: t.x}", "parameters.p.type"),
        ("[1]", "graph"),
    ],
)
def test_malformed_graphs_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ProblemsError) as caught:
        parse_graph(text)
    assert field in {p.field for p in caught.value.problems}
