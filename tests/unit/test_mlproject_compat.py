"""MLproject files as MLflow reads them: any type name, values as text, files as entry points."""

import shlex
from pathlib import Path

import pytest
from mlflow.projects._project_spec import EntryPoint

from theodolite.mlproject import (
    describe_project,
    file_entry_point,
    parse_mlproject,
    project_name_for,
    remote_inputs,
    render_command,
    resolve_parameters,
)
from theodolite.problems import ProblemsError

REAL_WORLD = """
name: tutorial
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: str, default: 0.1}
      normalize: {type: bool, default: false}
      layers: {type: list, default: [64, 32]}
      tracking_uri: {type: str, default: "http://localhost:5000"}
    command: "python train.py {alpha} {l1_ratio} {normalize} {layers} {tracking_uri}"
"""


def test_unknown_type_names_read_as_string_with_a_warning_and_no_follow_up_error() -> None:
    main = parse_mlproject(REAL_WORLD).entry_points["main"]
    assert main.parameters["l1_ratio"].type == "str"
    assert main.parameters["l1_ratio"].kind == "string"
    assert [w.split(":")[0] for w in main.warnings] == [
        "parameter l1_ratio",
        "parameter normalize",
        "parameter layers",
        "parameter tracking_uri",
    ]
    assert "read as string, as MLflow does" in main.warnings[0]


def test_a_refused_parameter_is_still_declared_for_the_command_check() -> None:
    text = (
        "entry_points:\n  main:\n    parameters: {n: {type: int, default: x}}\n"
        "    command: 'run {n}'\n"
    )
    with pytest.raises(ProblemsError) as caught:
        parse_mlproject(text)
    assert [p.field for p in caught.value.problems] == [
        "MLproject.entry_points.main.parameters.n.default"
    ]


@pytest.mark.parametrize(
    "value",
    [False, True, [64, 32], {"a": 1}, 0.1, 1e-05, 3, "plain text"],
)
def test_defaults_and_values_become_the_text_mlflow_passes(value: object) -> None:
    """The same text as MLflow's own EntryPoint computes (before it shell-quotes it)."""
    ours = parse_mlproject(
        "entry_points:\n  main:\n    parameters: {x: {type: string, default: 0}}\n"
        "    command: 'run {x}'\n"
    ).entry_points["main"]
    theirs = EntryPoint("main", {"x": {"type": "string", "default": value}}, "run {x}")
    resolved = resolve_parameters(ours, {"x": value})
    mlflow_final, _ = theirs.compute_parameters({}, storage_dir=None)
    assert shlex.quote(resolved["x"]) == mlflow_final["x"]


def test_yaml_defaults_are_stringified_as_mlflow_does() -> None:
    main = parse_mlproject(REAL_WORLD).entry_points["main"]
    resolved = resolve_parameters(main, {})
    assert resolved["normalize"] == "False"
    assert resolved["layers"] == "[64, 32]"
    assert resolved["alpha"] == "0.5"
    assert resolved["l1_ratio"] == "0.1"


def test_numbers_stay_checked_and_booleans_are_no_numbers() -> None:
    main = parse_mlproject(REAL_WORLD).entry_points["main"]
    with pytest.raises(ProblemsError) as caught:
        resolve_parameters(main, {"alpha": True, "normalize": True})
    assert [p.field for p in caught.value.problems] == ["params.alpha"]


def test_declared_entry_points_refuse_undeclared_parameters() -> None:
    main = parse_mlproject(REAL_WORLD).entry_points["main"]
    with pytest.raises(ProblemsError) as caught:
        resolve_parameters(main, {"extra": "1"})
    assert caught.value.problems[0].message.startswith("unknown parameter")


def test_a_file_entry_point_appends_parameters_as_mlflow_does(tmp_path: Path) -> None:
    spec = file_entry_point("src/train model.py")
    assert spec is not None and spec.file
    values = resolve_parameters(spec, {"alpha": 0.5, "flag": False, "name": "a b"})
    command = render_command(spec, values, tmp_path)
    assert command == "python 'src/train model.py' --alpha 0.5 --flag False --name 'a b'"
    shell = file_entry_point("run.sh")
    assert shell is not None
    assert render_command(shell, {}, tmp_path) == "bash run.sh"
    assert file_entry_point("notes.txt") is None
    with pytest.raises(ProblemsError):
        resolve_parameters(spec, {"bad name": "x"})


def test_projects_found_as_mlflow_finds_them() -> None:
    files = {"MLProject": "name: caps\nentry_points:\n  main:\n    command: 'python a.py'\n"}
    project = describe_project(
        [*files, "a.py", "tools/run.sh", "README.md"], files.__getitem__, fallback_name="x"
    )
    assert project.name == "caps"
    assert sorted(project.entry_points) == ["a.py", "main", "tools/run.sh"]
    bare = describe_project(["train.py"], {}.__getitem__, fallback_name="my-project")
    assert bare.name == "my-project"
    assert bare.entry_points["train.py"].command == "python train.py"
    with pytest.raises(ProblemsError, match="invalid archive"):
        describe_project(["README.md"], {}.__getitem__, fallback_name="x")
    with pytest.raises(ProblemsError) as caught:
        describe_project(["MLproject", "mlproject"], lambda _: "", fallback_name="x")
    assert "more than one MLproject" in caught.value.problems[0].message


def test_a_declared_entry_point_wins_the_name_of_a_file() -> None:
    text = "entry_points:\n  train.py:\n    command: 'python train.py --fixed'\n"
    project = describe_project(["MLproject", "train.py"], lambda _: text, fallback_name=None)
    assert not project.entry_points["train.py"].file


@pytest.mark.parametrize(
    ("filename", "name"),
    [("proj.tar.gz", "proj"), ("dir/Proj.ZIP", "Proj"), ("x.tgz", "x"), (None, None)],
)
def test_project_named_after_its_archive(filename: str | None, name: str | None) -> None:
    assert project_name_for(filename) == name


DATA_PROJECT = """
entry_points:
  main:
    parameters:
      labels: {type: path, default: labels.csv}
      data: path
      model: {type: uri, default: "s3://bucket/model"}
    command: "python read.py --labels {labels} --data {data} --model {model}"
"""


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("data/x.csv", True),
        ("/abs/x.csv", True),
        ("file:///abs/x.csv", True),
        ("runs:/0123abcd/data/x.csv", True),
        ("models:/net/3", True),
        ("mlflow-artifacts:/1/abc/artifacts/x.csv", True),
        # The worker downloads these where the job's queue allows: checked at submission.
        ("s3://bucket/data.csv", True),
        ("https://example.com/data.csv", True),
        ("gs://bucket/data.csv", False),
        ("gopher://x/y", False),
    ],
)
def test_remote_path_values_allowed_only_through_mlflow(value: str, allowed: bool) -> None:
    main = parse_mlproject(DATA_PROJECT).entry_points["main"]
    if allowed:
        assert resolve_parameters(main, {"data": value})["data"] == value
        return
    with pytest.raises(ProblemsError) as caught:
        resolve_parameters(main, {"data": value})
    assert [p.field for p in caught.value.problems] == ["params.data"]


def test_a_uri_parameter_is_passed_as_it_is_as_mlflow_does(tmp_path: Path) -> None:
    main = parse_mlproject(DATA_PROJECT).entry_points["main"]
    values = resolve_parameters(main, {"data": "runs:/abc/x.csv"})
    downloads = remote_inputs(main, values, tmp_path)
    assert downloads == {"data": ("runs:/abc/x.csv", tmp_path / "inputs" / "param_1" / "x.csv")}
    command = render_command(main, values, tmp_path / "project", downloads)
    assert f"--data {tmp_path}/inputs/param_1/x.csv" in command
    assert f"--labels {(tmp_path / 'project').resolve()}/labels.csv" in command
    assert "--model s3://bucket/model" in command


def test_a_file_uri_is_a_local_path(tmp_path: Path) -> None:
    main = parse_mlproject(DATA_PROJECT).entry_points["main"]
    values = resolve_parameters(main, {"data": "file:///srv/data.csv"})
    assert "--data /srv/data.csv" in render_command(main, values, tmp_path)


def test_a_remote_default_path_warns_and_needs_a_value() -> None:
    text = (
        "entry_points:\n  main:\n    parameters: {d: {type: path, default: 'gs://b/k.csv'}}\n"
        "    command: 'run {d}'\n"
    )
    main = parse_mlproject(text).entry_points["main"]
    assert "gs: paths are not downloaded" in main.warnings[0]
    with pytest.raises(ProblemsError):
        resolve_parameters(main, {})
    assert resolve_parameters(main, {"d": "runs:/r/k.csv"}) == {"d": "runs:/r/k.csv"}
