"""Job start latency: a warm pool child against a fresh interpreter. Prints JSON. Not a test.

    .venv/bin/python bench/warm_start.py --runs 30

Each run goes through the worker's own runner (``JobLauncher``) with a script that imports
mlflow, sklearn, art and numpy and then prints the time: its first line after the imports, when
the job's own work could begin. Measured from just before ``JobLauncher.start`` is called ("start
requested") to that line (``start_to_first_line_ms``); ``start_to_interpreter_ms`` is to the
script's very first statement, before its imports (what the interpreter itself costs).
``warm`` runs start in a warm pool preloading the worker's default list (numpy, sklearn, torch
when installed, art, mlflow, prefect); ``cold`` runs are ``python job.py`` with bash, as without
the pool. One unmeasured run of each kind comes first. Also reports the pool's start-up time.

With ``--sandbox`` (run as root) each job runs in its sandbox as the worker makes it: a uid,
the folder handed over, a cgroup with the default limits, the allow-listed environment, then
``enter_sandbox`` after the fork (warm) or bwrap (cold); the time from start requested includes
making the sandbox (``Sandboxes.open``), not the job's MLflow proxy (it needs a server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from stats import percentiles

if TYPE_CHECKING:  # imported for real after the environment is set (Prefect reads it at import)
    from theodolite_worker.sandboxing import Sandboxes
    from theodolite_worker.warm_pool import WarmPool

SCRIPT = """\
import time; line_one = time.time()
import mlflow, sklearn, art, numpy
print("times", line_one, time.time(), flush=True)
"""


async def one_run(
    folder: Path, pool: WarmPool | None, sandboxes: Sandboxes | None = None
) -> tuple[float, float, bool]:
    from theodolite_worker.containment import job_environment
    from theodolite_worker.execution import ExecutionOptions, JobCommand, JobLauncher
    from theodolite_worker.settings import WorkerSettings

    lines: list[str] = []

    async def sink(batch: list[str]) -> None:
        lines.extend(batch)

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    launcher = JobLauncher(
        ExecutionOptions(flush_interval_s=0.05, batch_lines=200, tail_lines=5, kill_grace_s=1.0),
        warm_pool=pool,
    )
    log_file = folder.parent / f"{folder.name}.log"
    requested = time.time()
    sandbox = None
    if sandboxes is not None:
        settings = WorkerSettings(work_dir=folder.parent)
        env = job_environment(settings, uuid.uuid4(), "run", "0", home=folder)
        sandbox = sandboxes.open(
            name=f"bench-{uuid.uuid4()}", work_dir=folder, env=env, limits=settings.job_limits
        )
    job = JobCommand(
        "python job.py", cwd=folder, env=env, log_file=log_file, timeout_s=120, sandbox=sandbox
    )
    try:
        result = await (await launcher.start(job, log_sink=sink)).wait()
    finally:
        if sandbox is not None and sandboxes is not None:
            sandboxes.close(sandbox)
    times = [line for line in lines if line.startswith("times ")]
    if result.exit_code != 0 or not times:
        raise RuntimeError(f"the job failed ({result.exit_code}): {lines[-5:]}")
    line_one, after_imports = (float(value) for value in times[-1].split()[1:])
    return (line_one - requested) * 1000, (after_imports - requested) * 1000, result.warm


async def measure(
    folder: Path, pool: WarmPool | None, runs: int, sandboxes: Sandboxes | None = None
) -> dict[str, object]:
    await one_run(folder, pool, sandboxes)  # unmeasured: disk caches, first fork
    first_lines, imports = [], []
    for _ in range(runs):
        first_line, imported, warm = await one_run(folder, pool, sandboxes)
        if warm != (pool is not None):
            raise RuntimeError("a run took the wrong path")
        first_lines.append(first_line)
        imports.append(imported)
    return {
        "start_to_first_line_ms": percentiles(imports),
        "start_to_interpreter_ms": percentiles(first_lines),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sandbox", action="store_true", help="each job in its sandbox (root)")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from theodolite_worker.sandboxing import Sandboxes, isolation_at_start
    from theodolite_worker.settings import WorkerSettings
    from theodolite_worker.warm_pool import WarmPool

    sandboxes = None
    if args.sandbox:
        settings = WorkerSettings()
        sandboxes = Sandboxes(settings, isolation_at_start(settings))
    with tempfile.TemporaryDirectory(prefix="warm-start-") as tmp:
        folder = Path(tmp) / "job"
        folder.mkdir()
        (folder / "job.py").write_text(SCRIPT)
        pool = WarmPool()
        began = time.monotonic()
        if not await asyncio.to_thread(pool.start):
            raise SystemExit("the warm pool did not start")
        startup_s = time.monotonic() - began
        try:
            warm = await measure(folder, pool, args.runs, sandboxes)
        finally:
            pool.shutdown()
        cold = await measure(folder, None, args.runs, sandboxes)

    warm_p50 = warm["start_to_first_line_ms"]["p50"]  # type: ignore[index]
    cold_p50 = cold["start_to_first_line_ms"]["p50"]  # type: ignore[index]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "sandbox": args.sandbox,
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "pool": {
                    "startup_s": round(startup_s, 2),
                    "preloaded": pool.preloaded,
                    "skipped": pool.skipped,
                },
                "warm": warm,
                "cold": cold,
                "first_line_speedup_p50": round(cold_p50 / max(warm_p50, 0.1), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
