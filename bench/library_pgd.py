"""PGD on the digits test set through the testbed against the same ART call in a plain script,
and the wall time of each of the six library experiments (examples/) at their default sizes.
Prints JSON. Not a test.

    .venv/bin/python bench/library_pgd.py
    .venv/bin/python bench/library_pgd.py --skip-experiments

Starts its own private stack (free ports, own databases and RabbitMQ vhost) and removes it.
The PGD job is a four-step graph (digits -> CNN -> ART classifier -> PGD -> accuracy); the plain
script trains the same CNN (the same task and seed, so the same weights) in a fresh interpreter
and calls ART's ProjectedGradientDescent directly. Both report their robust accuracy: they must
agree. Times: the job from submission to its terminal state (server-side timestamps), its PGD
step alone (``step.attack.duration_s``), the plain script's process wall time and its PGD call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.archives import make_tar, mlproject  # noqa: E402
from theodolite.client import pack_folder  # noqa: E402
from theodolite.devstack import down_isolated, isolated_config, up_isolated  # noqa: E402

EXAMPLES = ["evasion-curve", "defences", "backdoor-poisoning", "membership-inference",
            "model-extraction", "adversarial-training"]  # fmt: skip
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
PGD = {"eps": 0.1, "eps_step": 0.025, "max_iter": 20}

MLPROJECT = mlproject(
    "library-pgd", "theodolite run-graph graph.yaml -P seed={seed}", seed=("int", 0)
)
GRAPH = f"""\
name: library-pgd
parameters: {{seed: {{type: int, default: 0}}}}
steps:
  data: {{task: data.digits, inputs: {{view: image, seed: $seed}}}}
  cnn: {{task: models.train_cnn, inputs: {{x: $data.x_train, y: $data.y_train, epochs: 15}}}}
  classifier: {{task: models.art_classifier, inputs: {{model: $cnn}}}}
  attack:
    task: attacks.pgd
    inputs: {{classifier: $classifier, x: $data.x_test, y: $data.y_test, eps: {PGD["eps"]},
             eps_step: {PGD["eps_step"]}, max_iter: {PGD["max_iter"]}}}
  robust:
    task: metrics.accuracy
    inputs: {{classifier: $classifier, x: $attack, y: $data.y_test}}
outputs:
  robust_accuracy: {{from: $robust, kind: metric}}
"""
# The same work as a plain script: the CNN from the same task and step seed, then plain ART.
PLAIN = f"""\
import contextlib, io, json, time
started = time.perf_counter()
import numpy as np, torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from theodolite.sdk.context import step_seed
from theodolite_data.tasks import digits
from theodolite_models.tasks import train_cnn

data = digits(view="image", seed=0)
with contextlib.redirect_stdout(io.StringIO()):
    cnn = train_cnn(data["x_train"], data["y_train"], epochs=15, seed=step_seed(0, "cnn"))
classifier = PyTorchClassifier(cnn, torch.nn.CrossEntropyLoss(), (1, 8, 8), 10,
                               clip_values=(0.0, 1.0), device_type="cpu")
np.random.seed(0); torch.manual_seed(0)
attack_started = time.perf_counter()
x_adv = ProjectedGradientDescent(classifier, eps={PGD["eps"]}, eps_step={PGD["eps_step"]},
                                 max_iter={PGD["max_iter"]}, batch_size=128,
                                 verbose=False).generate(data["x_test"], y=data["y_test"])
attack_s = time.perf_counter() - attack_started
robust = float(np.mean(np.argmax(classifier.predict(x_adv), axis=1) == data["y_test"]))
print(json.dumps({{"robust_accuracy": robust, "attack_s": attack_s,
                  "in_process_s": time.perf_counter() - started}}))
"""


def example(name: str) -> bytes:
    return pack_folder(REPO / "examples" / name)


def at(job: dict[str, Any], status: str) -> datetime:
    return next(datetime.fromisoformat(h["at"]) for h in job["history"] if h["status"] == status)


def run_job(
    http: httpx.Client, experiment: str, archive: bytes, queue: str = "cpu"
) -> dict[str, Any]:
    stored = http.post("/entrypoints", files={"archive": ("a.tar.gz", archive)})
    stored.raise_for_status()
    assert stored.json()["graph"]["valid"], stored.json()["graph"]["problems"]
    submitted = http.post(
        "/jobs",
        json={"experiment_id": experiment, "entrypoint_id": stored.json()["id"], "queue": queue},
    )
    submitted.raise_for_status()
    while True:
        job = http.get(f"/jobs/{submitted.json()['id']}").json()
        if job["status"] in TERMINAL:
            break
        time.sleep(0.2)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
    metrics = {
        m["key"]: m["latest"]["value"]
        for m in http.get(f"/jobs/{job['id']}/metrics").json()["data"]
    }
    return {
        "job": job,
        "metrics": metrics,
        "submit_to_end_s": (at(job, "succeeded") - at(job, "queued")).total_seconds(),
        "running_s": (at(job, "succeeded") - at(job, "running")).total_seconds(),
    }


def plain_script() -> dict[str, float]:
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", PLAIN], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    report = json.loads(output.strip().splitlines()[-1])
    report["process_s"] = time.perf_counter() - started
    return report


def headline(name: str, metrics: dict[str, float]) -> dict[str, float]:
    keys = {
        "evasion-curve": ["lr_pgd.0.1", "cnn_pgd.0.1"],
        "defences": [
            "none.adaptive",
            "feature_squeezing.adaptive",
            "spatial_smoothing.adaptive",
        ],
        "backdoor-poisoning": [
            "poison_0.01.attack_success_rate",
            "poison_0.1.attack_success_rate",
        ],
        "membership-inference": ["overfit.auc", "regularised.auc"],
        "model-extraction": ["budget_50.fidelity", "budget_400.fidelity"],
        "adversarial-training": ["standard.0.2", "pgd_trained_0.2.0.2"],
    }[name]
    return {k: round(metrics[k], 3) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="PGD jobs and plain scripts")
    parser.add_argument("--skip-experiments", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"pgd": {"test_digits": 450, **PGD, "repeats": args.repeats}}
    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        up_isolated(config)
        try:
            with httpx.Client(
                base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=60
            ) as http:
                deadline = time.monotonic() + 120
                while "defences.adversarial_training" not in {
                    t["reference"] for t in http.get("/tasks").json()["data"]
                }:
                    assert time.monotonic() < deadline, "the worker never announced its plugins"
                    time.sleep(0.5)
                experiment = http.post("/experiments", json={"name": "bench-library"}).json()["id"]
                archive = make_tar({"MLproject": MLPROJECT, "graph.yaml": GRAPH})
                run_job(http, experiment, archive)  # the first job warms the worker's caches
                jobs = [run_job(http, experiment, archive) for _ in range(args.repeats)]
                plain = [plain_script() for _ in range(args.repeats)]
                best_job = min(jobs, key=lambda j: j["submit_to_end_s"])
                best_plain = min(plain, key=lambda p: p["process_s"])
                job_attack = min(j["metrics"]["step.attack.duration_s"] for j in jobs)
                report["pgd"].update(
                    {
                        "robust_accuracy_job": best_job["metrics"]["robust_accuracy"],
                        "robust_accuracy_plain": best_plain["robust_accuracy"],
                        "job_submit_to_end_s": round(best_job["submit_to_end_s"], 2),
                        "job_running_s": round(best_job["running_s"], 2),
                        "plain_script_s": round(best_plain["process_s"], 2),
                        "end_to_end_ratio": round(
                            best_job["submit_to_end_s"] / best_plain["process_s"], 2
                        ),
                        "job_pgd_step_s": round(job_attack, 3),
                        "plain_pgd_call_s": round(min(p["attack_s"] for p in plain), 3),
                        "pgd_step_ratio": round(job_attack / min(p["attack_s"] for p in plain), 2),
                    }
                )
                if not args.skip_experiments:
                    experiments = {}
                    for name in EXAMPLES:
                        result = run_job(http, experiment, example(name))
                        experiments[name] = {
                            "submit_to_end_s": round(result["submit_to_end_s"], 1),
                            "running_s": round(result["running_s"], 1),
                            "steps": sum(k.startswith("step.") for k in result["metrics"]),
                            **headline(name, result["metrics"]),
                        }
                        print(f"  {name}: {experiments[name]}", file=sys.stderr)
                    report["experiments_default_sizes"] = experiments
        finally:
            down_isolated(config)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
