"""``theodolite pipelines`` against the running stack: a pipeline file whose second stage takes
the first stage's MLflow run id, submitted and followed to its end; a bad one refused whole."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.fixtures.archives import EXAMPLES
from tests.fixtures.stack import Stack
from tests.integration.helpers import unique
from tests.integration.test_status_client_cli import _cli, _json
from theodolite.client import TheodoliteClient

CHAIN = """\
experiment: {experiment}
name: {name}
stages:
  second:
    source: hello
    params:
      greeting: ${{first.run_id}}
      count: 1
  first:
    source: ./hello
    params: {{count: 2}}
"""


def _pipeline_file(folder: Path, experiment: str, text: str = CHAIN) -> Path:
    """A pipeline file beside a copy of examples/hello (its sources are relative to it)."""
    shutil.copytree(EXAMPLES / "hello", folder / "hello")
    path = folder / "chain.yaml"
    path.write_text(text.format(experiment=experiment, name=unique("chain")))
    return path


def test_a_pipeline_file_runs_its_stages_in_order(stack: Stack, tmp_path: Path) -> None:
    experiment = unique("cli-pipeline")
    spec = _pipeline_file(tmp_path, "ignored-by-e")
    done = _cli(
        stack,
        "pipelines",
        "submit",
        str(spec),
        "--experiment-name",
        experiment,
        "-P",
        "first.count=3",
        "--poll",
        "0.5",
        "--wait",
        "--json",
    )
    pipeline = _json(done)
    assert pipeline["status"] == "succeeded" and pipeline["finished"]
    stages = {stage["name"]: stage for stage in pipeline["stages"]}
    assert [stage["name"] for stage in pipeline["stages"]] == ["first", "second"]  # upstream first
    assert stages["second"]["depends_on"] == ["first"]  # implied by the reference
    [first], [second] = stages["first"]["jobs"], stages["second"]["jobs"]
    assert first["mlflow_run_id"] and second["mlflow_run_id"] != first["mlflow_run_id"]
    assert "stage second: succeeded" in done.stderr and "pipeline: succeeded" in done.stderr

    with TheodoliteClient(stack.config.api_url, api_key=stack.admin_key) as client:
        assert client.get_job(first["job_id"]).params["count"] == "3"  # -P over the file's 2
        second_job = client.get_job(second["job_id"])
        assert second_job.params["greeting"] == first["mlflow_run_id"]
        assert second_job.download("greeting.txt") == f"{first['mlflow_run_id']}, world\n".encode()

    listed = _json(_cli(stack, "pipelines", "list", "--experiment-name", experiment, "--json"))
    assert [p["id"] for p in listed["data"]] == [pipeline["id"]]
    shown = _cli(stack, "pipelines", "show", pipeline["id"])
    assert shown.returncode == 0 and second["job_id"] in shown.stdout
    again = _cli(stack, "pipelines", "cancel", pipeline["id"])
    assert again.returncode == 2 and "409" in again.stderr


def test_a_pipeline_with_bad_stages_is_refused_with_every_problem(
    stack: Stack, tmp_path: Path
) -> None:
    experiment = unique("cli-pipeline-bad")
    bad = CHAIN.replace("${{first.run_id}}", "${{frist.run_id}}").replace(
        "params: {{count: 2}}", "params: {{count: 2}}\n    depends_on: [zeroth]"
    )
    refused = _cli(stack, "pipelines", "submit", str(_pipeline_file(tmp_path, experiment, bad)))
    assert refused.returncode == 2, refused.stderr
    assert "422" in refused.stderr
    assert "stages.second.params.greeting: ${frist.run_id}: no stage 'frist'" in refused.stderr
    assert "stages.first.depends_on.0: no stage 'zeroth'" in refused.stderr
    listed = _json(_cli(stack, "pipelines", "list", "--experiment-name", experiment, "--json"))
    assert listed["count"] == 0  # nothing left behind
