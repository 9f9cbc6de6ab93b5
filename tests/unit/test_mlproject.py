from pathlib import Path

import pytest

from theodolite.mlproject import parse_mlproject, render_command, resolve_parameters, type_error
from theodolite.problems import ProblemsError

PROJECT = """
name: demo
entry_points:
  main:
    parameters:
      eps: {type: float, default: 0.1}
      epochs: {type: int, default: 3}
      name: string
      data: {type: path, default: data/train.csv}
      model: {type: uri, default: "models:/net/1"}
    command: "python train.py --eps {eps} --epochs {epochs} --name {name} --data {data} --model {model}"
  plain:
    command: "echo hi"
"""


def test_parses_both_parameter_forms_in_declaration_order() -> None:
    project = parse_mlproject(PROJECT)
    main = project.entry_points["main"]
    assert list(main.parameters) == ["eps", "epochs", "name", "data", "model"]
    assert main.parameters["name"].type == "string"
    assert main.parameters["name"].required
    assert main.parameters["eps"].default == "0.1"
    assert project.entry_points["plain"].parameters == {}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[1, 2]", "MLproject"),
        ("name: x\nentry_points: [a]\n", "MLproject.entry_points"),
        ("entry_points:\n  main: {}\n", "MLproject.entry_points.main.command"),
        (
            "entry_points:\n  main:\n    command: 'echo {x}'\n",
            "MLproject.entry_points.main.command",
        ),
        (
            "entry_points:\n  main:\n    parameters: {a: {type: int, default: 1.5}}\n    command: x\n",
            "MLproject.entry_points.main.parameters.a.default",
        ),
        (
            "entry_points:\n  main:\n    parameters: {a: {type: float, default: false}}\n"
            "    command: x\n",
            "MLproject.entry_points.main.parameters.a.default",
        ),
    ],
)
def test_invalid_mlproject_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ProblemsError) as caught:
        parse_mlproject(text)
    assert field in {p.field for p in caught.value.problems}


def test_every_entry_point_problem_is_reported_at_once() -> None:
    text = "entry_points:\n  a: {}\n  b:\n    command: 'run {missing}'\n  c: 3\n"
    with pytest.raises(ProblemsError) as caught:
        parse_mlproject(text)
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("declared", "value", "ok"),
    [
        ("float", 0.5, True),
        ("float", "1e-3", True),
        ("float", 3, True),
        ("float", "abc", False),
        ("float", "nan", False),
        ("float", True, False),
        ("int", 4, True),
        ("int", "4", True),
        ("int", 4.0, True),
        ("int", 4.5, False),
        ("int", "4.5", False),
        ("int", False, False),
        ("string", "anything at all", True),
        ("string", None, False),
        ("string", True, True),
        ("string", [1, 2], True),
        ("bool", False, True),
        ("str", "x", True),
        ("path", "data/x.csv", True),
        ("path", "", False),
        ("uri", "s3://bucket/key", True),
        ("uri", "models:/net/1", True),
        ("uri", "plain words", False),
        ("float", [1.0], False),
    ],
)
def test_type_checks(declared: str, value: object, ok: bool) -> None:
    assert (type_error(declared, value) is None) is ok


def test_resolve_fills_defaults_and_reports_every_problem() -> None:
    main = parse_mlproject(PROJECT).entry_points["main"]
    assert resolve_parameters(main, {"name": "run", "epochs": 5.0}) == {
        "eps": "0.1",
        "epochs": "5",
        "name": "run",
        "data": "data/train.csv",
        "model": "models:/net/1",
    }
    with pytest.raises(ProblemsError) as caught:
        resolve_parameters(main, {"eps": "big", "extra": 1})
    assert {p.field for p in caught.value.problems} == {"params.eps", "params.extra", "params.name"}


def test_render_quotes_values_and_makes_paths_absolute(tmp_path: Path) -> None:
    main = parse_mlproject(PROJECT).entry_points["main"]
    values = resolve_parameters(main, {"name": "it's; rm -rf /"})
    command = render_command(main, values, tmp_path)
    assert "--name 'it'\"'\"'s; rm -rf /'" in command
    assert f"--data {tmp_path.resolve()}/data/train.csv" in command
    assert "--model models:/net/1" in command
