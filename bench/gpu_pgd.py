"""The GPU worker, really: the same PGD graph job (bench/library_pgd.py's: digits -> CNN -> ART
classifier -> PGD, eps 0.1, 20 steps, on the 450 test digits) on the ``gpu`` queue, whose worker
pins CUDA device 0, and on the ``cpu`` queue, whose worker hides every GPU. Prints JSON: each
one's robust accuracy, the device torch used, the job's time and its PGD step's. Not a test.

    .venv/bin/python bench/gpu_pgd.py            # on a machine with an NVIDIA GPU and CUDA torch

The two accuracies must agree within ``--tolerance`` (CUDA kernels are not bit-identical to the
CPU's). Without a usable GPU it says so and runs the CPU half only. Starts its own private stack.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.library_pgd import GRAPH, MLPROJECT, PGD, run_job  # noqa: E402
from tests.fixtures.archives import make_tar  # noqa: E402
from theodolite.devstack import down_isolated, isolated_config, start_worker, up_isolated  # noqa: E402

# Whether torch, as installed here (the GPU worker's environment), reaches a CUDA device.
DEVICE_PROBE = "import torch; print(torch.cuda.is_available() and torch.cuda.get_device_name(0))"


def cuda_device() -> str | None:
    """The GPU torch sees here, or None."""
    found = subprocess.run(
        [sys.executable, "-c", DEVICE_PROBE], capture_output=True, text=True, check=False
    ).stdout.strip()
    return None if found in ("", "False") else found


def measured(http: httpx.Client, experiment: str, queue: str, repeats: int) -> dict[str, Any]:
    archive = make_tar({"MLproject": MLPROJECT, "graph.yaml": GRAPH})
    run_job(http, experiment, archive, queue)  # the first job warms the worker's caches
    jobs = [run_job(http, experiment, archive, queue) for _ in range(repeats)]
    best = min(jobs, key=lambda j: j["submit_to_end_s"])
    return {
        "robust_accuracy": best["metrics"]["robust_accuracy"],
        "job_submit_to_end_s": round(best["submit_to_end_s"], 2),
        "pgd_step_s": round(min(j["metrics"]["step.attack.duration_s"] for j in jobs), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.01, help="robust accuracy")
    args = parser.parse_args()
    device = cuda_device()
    report: dict[str, Any] = {"pgd": {"test_digits": 450, **PGD}, "gpu": device or "none found"}
    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        up_isolated(config)
        try:
            if device is not None:
                start_worker(config, "gpu", env={"THEODOLITE_WORKER_GPUS": "0"})
            with httpx.Client(
                base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=60
            ) as http:
                deadline = time.monotonic() + 120
                while "attacks.pgd" not in {
                    t["reference"] for t in http.get("/tasks").json()["data"]
                }:
                    assert time.monotonic() < deadline, "the worker never announced its plugins"
                    time.sleep(0.5)
                experiment = http.post("/experiments", json={"name": "bench-gpu"}).json()["id"]
                report["cpu"] = measured(http, experiment, "cpu", args.repeats)
                if device is not None:
                    report["gpu_queue"] = measured(http, experiment, "gpu", args.repeats)
                    difference = abs(
                        report["gpu_queue"]["robust_accuracy"] - report["cpu"]["robust_accuracy"]
                    )
                    report["agree"] = difference <= args.tolerance
                    report["pgd_step_speedup"] = round(
                        report["cpu"]["pgd_step_s"] / report["gpu_queue"]["pgd_step_s"], 2
                    )
        finally:
            down_isolated(config)
    print(json.dumps(report, indent=2))
    if report.get("agree") is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
