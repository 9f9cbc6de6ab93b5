"""examples/pipeline-robustness: its pipeline file fits its MLproject. Every stage names a
declared entry point with declared, well-typed parameters (references resolved to values of the
kind they will have), every reference names an existing stage (and a parameter or metric that
stage has), and the stages form the intended graph: train, then three attacks at once, then
the report."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from theodolite.mlproject import ProjectSpec, parse_mlproject, render_command, resolve_parameters

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline-robustness"
# ${stage.run_id}, ${stage.artifact_uri}, ${stage.job_id}, ${stage.metrics.KEY}, ${stage.params.KEY}
REFERENCE = re.compile(
    r"\$\{(?P<stage>[A-Za-z0-9_-]+)\.(?P<what>run_id|artifact_uri|job_id|metrics|params)"
    r"(?:\.(?P<key>[A-Za-z0-9_.-]+))?\}"
)
RUN_ID = "0123456789abcdef0123456789abcdef"


def load_pipeline() -> dict[str, Any]:
    pipeline = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    assert isinstance(pipeline, dict)
    return pipeline


def load_project() -> ProjectSpec:
    return parse_mlproject((EXAMPLE / "MLproject").read_text())


def references(value: Any) -> list[re.Match[str]]:
    return list(REFERENCE.finditer(value)) if isinstance(value, str) else []


def logged_metrics(project: ProjectSpec, entry_point: str) -> set[str]:
    """The metric keys the entry point's script logs: the constant keys of its
    ``mlflow.log_metrics({...})`` and ``mlflow.log_metric("key", ...)`` calls."""
    script = project.entry_points[entry_point].command.split()[1]
    keys: set[str] = set()
    for node in ast.walk(ast.parse((EXAMPLE / script).read_text())):
        if (
            not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute))
            or not node.args
        ):
            continue
        first = node.args[0]
        if node.func.attr == "log_metrics" and isinstance(first, ast.Dict):
            keys |= {str(k.value) for k in first.keys if isinstance(k, ast.Constant)}
        if node.func.attr == "log_metric" and isinstance(first, ast.Constant):
            keys.add(str(first.value))
    return keys


def stage_values(pipeline: dict[str, Any], project: ProjectSpec, name: str) -> dict[str, str]:
    """A stage's parameters as the api will pass them: defaults filled, references replaced by
    a value of the kind they resolve to (a run id, runs:/..., a job id, a metric, a param)."""
    stage = pipeline["stages"][name]
    values: dict[str, Any] = {}
    for param, value in (stage.get("params") or {}).items():
        if isinstance(value, str):
            for match in references(value):
                upstream, what = match["stage"], match["what"]
                replacement = {
                    "run_id": RUN_ID,
                    "artifact_uri": f"runs:/{RUN_ID}",
                    "job_id": str(uuid.uuid4()),
                    "metrics": "0.5",
                }.get(what)
                if what == "params":
                    replacement = stage_values(pipeline, project, upstream)[match["key"]]
                assert replacement is not None
                value = value.replace(match[0], replacement)
        values[param] = value
    entry_point = project.entry_points[stage.get("entry_point", "main")]
    return resolve_parameters(entry_point, values, field_prefix=f"stages.{name}.params")


def test_every_stage_runs_a_declared_entry_point_of_this_folder() -> None:
    pipeline, project = load_pipeline(), load_project()
    assert pipeline["experiment"] and pipeline["name"]
    for name, stage in pipeline["stages"].items():
        assert (EXAMPLE / stage["source"] / "MLproject").is_file(), name
        assert stage.get("entry_point", "main") in project.entry_points, name


@pytest.mark.parametrize("name", ["train", "fgsm", "pgd", "cw", "report"])
def test_each_stage_params_are_declared_typed_and_render_a_command(name: str) -> None:
    pipeline, project = load_pipeline(), load_project()
    stage = pipeline["stages"][name]
    entry_point = project.entry_points[stage["entry_point"]]
    assert set(stage.get("params") or {}) <= set(entry_point.parameters)
    # Raises, naming every problem, on an unknown, missing or mistyped parameter.
    values = stage_values(pipeline, project, name)
    command = render_command(entry_point, values, EXAMPLE)
    script = command.split()[1]
    assert command.startswith("python ") and (EXAMPLE / script).is_file()


def test_references_name_existing_stages_and_what_those_stages_have() -> None:
    pipeline, project = load_pipeline(), load_project()
    stages = pipeline["stages"]
    found = 0
    for name, stage in stages.items():
        for param, value in (stage.get("params") or {}).items():
            assert not isinstance(value, str) or value.count("${") == len(references(value)), (
                f"{name}.{param}: {value!r} holds a reference of no known form"
            )
            for match in references(value):
                found += 1
                upstream = match["stage"]
                assert upstream in stages and upstream != name, f"{name}.{param}: {value!r}"
                upstream_entry = stages[upstream]["entry_point"]
                if match["what"] == "metrics":
                    assert match["key"] in logged_metrics(project, upstream_entry), (
                        f"{name}.{param}: {upstream_entry} logs no metric {match['key']!r}"
                    )
                if match["what"] == "params":
                    assert match["key"] in project.entry_points[upstream_entry].parameters
    assert found >= 16


def test_attacks_run_at_once_after_train_and_the_report_after_all_three() -> None:
    stages = load_pipeline()["stages"]

    def upstream(name: str) -> set[str]:
        implied = {
            match["stage"]
            for value in (stages[name].get("params") or {}).values()
            for match in references(value)
        }
        return implied | set(stages[name].get("depends_on", []))

    assert upstream("train") == set()
    attacks = {"fgsm", "pgd", "cw"}
    for attack in attacks:
        assert upstream(attack) == {"train"}
        assert stages[attack]["params"]["attack"] == attack
        # The model the train stage logs under the artifact path "model".
        assert stages[attack]["params"]["model_uri"] == "${train.artifact_uri}/model"
    assert upstream("report") == attacks
    assert 'name="model"' in (EXAMPLE / "train.py").read_text()
    samples = {stages[attack]["params"]["samples"] for attack in attacks}
    assert len(samples) == 1, "the attacks compare on the same digits only with one sample count"


def test_the_attack_logs_the_metrics_the_brief_names() -> None:
    assert logged_metrics(load_project(), "attack") == {
        "clean_accuracy",
        "robust_accuracy",
        "mean_perturbation_l2",
        "attack_time_s",
    }
    assert {"clean_accuracy", "train_loss"} <= logged_metrics(load_project(), "train")
