"""Issue 12's probe on the real stack: a job tags another job's MLflow run. Through its tracking
proxy, the job logs to its own run and is refused the other's (warm and cold starts); MLflow,
asked directly, shows the other run unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.stack import Stack
from tests.integration.helpers import create_experiment, metrics_of, submit, upload_ok, wait_for_end

PROBE = r"""
import os, sys
import mlflow
from mlflow.exceptions import MlflowException

victim = sys.argv[1]
client = mlflow.MlflowClient()
print("tracking through", os.environ["MLFLOW_TRACKING_URI"], flush=True)
client.log_metric(os.environ["MLFLOW_RUN_ID"], "own_metric", 1.0)
attacks = {
    "tag": lambda: client.set_tag(victim, "owned_by", "another job"),
    "metric": lambda: client.log_metric(victim, "poisoned", 0.0),
    "delete": lambda: client.delete_run(victim),
    "end": lambda: client.set_terminated(victim, "FAILED"),
}
for what, attack in attacks.items() if victim != "none" else ():
    try:
        attack()
        print(what, "ALLOWED")
    except MlflowException as exc:
        print(what, "REFUSED", exc.error_code)
"""
MLPROJECT = """\
name: tracking-probe
entry_points:
  warm:
    parameters: {victim: string}
    command: "python probe.py {victim}"
  cold:
    parameters: {victim: string}
    command: "python probe.py {victim} && true"
"""


def _run(api: httpx.Client, target: dict[str, str], start: str, victim: str) -> dict[str, Any]:
    response = submit(api, **target, entry_point=start, params={"victim": victim})
    assert response.status_code == 202, response.text
    job = wait_for_end(api, response.json()["id"], timeout_s=180)
    job["log"] = api.get(f"/jobs/{job['id']}/logs").text
    assert job["status"] == "succeeded", (job["error"], job["log"])
    return job


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_a_job_cannot_tag_another_jobs_run(stack: Stack, api: httpx.Client, start: str) -> None:
    experiment = create_experiment(api)
    entrypoint = upload_ok(api, make_tar({"MLproject": MLPROJECT, "probe.py": PROBE}))
    target = {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}
    victim = _run(api, target, start, "none")
    mlflow = stack.config.mlflow_url

    def victim_run() -> dict[str, Any]:
        answer = httpx.get(
            f"{mlflow}/api/2.0/mlflow/runs/get", params={"run_id": victim["mlflow_run_id"]}
        )
        return dict(answer.json()["run"])

    before = victim_run()
    attacker = _run(api, target, start, victim["mlflow_run_id"])

    assert "tracking through http://127.0.0.1:" in attacker["log"]
    assert mlflow not in attacker["log"]  # the job never had the real tracking URI
    for what in ("tag", "metric", "delete", "end"):
        assert f"{what} REFUSED PERMISSION_DENIED" in attacker["log"], attacker["log"]
    assert metrics_of(api, attacker["id"]) == {"own_metric": 1.0}
    after = victim_run()
    assert after["data"] == before["data"]
    assert after["info"]["lifecycle_stage"] == "active"
    assert after["info"]["status"] == before["info"]["status"] == "FINISHED"
