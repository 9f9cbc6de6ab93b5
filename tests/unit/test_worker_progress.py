"""A job attempt end to end in the worker's JobRunner, with fakes for the archive store, MLflow
and the broker: progress lines become job.progress events, both when the job starts warm and
when it starts with bash."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.fixtures.archives import make_tar
from tests.fixtures.events import job_submitted
from theodolite.events import (
    PROGRESS_LINE_PREFIX,
    JobLog,
    JobProgress,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
)
from theodolite_worker.containment import job_environment
from theodolite_worker.jobs import JobRunner
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.warm_pool import WarmPool

SCRIPT = f"""
import os, sys
print("device", os.environ["THEODOLITE_DEVICE"], "run", os.environ["MLFLOW_RUN_ID"])
print({PROGRESS_LINE_PREFIX!r} + '{{"fraction": 0.5, "step": "train"}}', flush=True)
print("warm" if "multiprocessing.forkserver" in sys.modules else "cold")
"""


class FakeCache:
    def __init__(self, archive: bytes) -> None:
        self.archive = archive

    async def get(self, sha256: str) -> bytes:
        return self.archive


class FakeTracker:
    def __init__(self) -> None:
        self.finished: list[bool] = []
        self.artifacts: list[str] = []

    async def start(self, job_id: uuid.UUID, attempt: int, job: JobSubmitted) -> str:
        return "run-1"

    async def log_artifact(self, run_id: str, path: Path, artifact_path: str) -> None:
        self.artifacts.append(f"{artifact_path}/{path.name}")

    async def finish(self, run_id: str, *, succeeded: bool) -> None:
        self.finished.append(succeeded)


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[BaseModel] = []

    async def publish(self, payload: BaseModel) -> None:
        self.published.append(payload)


@pytest.fixture(scope="module")
def pool() -> Iterator[WarmPool]:
    pool = WarmPool(["json"])
    assert pool.start()
    yield pool
    pool.shutdown()


@pytest.mark.parametrize(
    ("command", "warm"), [("python job.py", True), ("python job.py && true", False)]
)
async def test_progress_lines_are_published_as_progress_events(
    pool: WarmPool, tmp_path: Path, command: str, warm: bool
) -> None:
    archive = make_tar(
        {
            "MLproject": f"name: p\nentry_points:\n  main:\n    command: '{command}'\n",
            "job.py": SCRIPT,
        }
    )
    settings = WorkerSettings(work_dir=tmp_path, log_flush_interval_s=0.05)
    tracker = FakeTracker()
    runner = JobRunner(
        settings=settings,
        cache=FakeCache(archive),  # type: ignore[arg-type]
        tracker=tracker,  # type: ignore[arg-type]
        warm_pool=pool,
    )
    events = FakeEvents()
    job = job_submitted(timeout_s=60)

    await runner.run(uuid.uuid4(), 1, job, events)  # type: ignore[arg-type]

    assert tracker.finished == [True]
    assert tracker.artifacts == ["logs/output.log"]
    # The progress report keeps its place between the log lines around it.
    assert [type(event) for event in events.published] == [
        JobStarted,
        JobLog,
        JobLog,
        JobProgress,
        JobLog,
        JobSucceeded,
    ]
    assert [e for e in events.published if isinstance(e, JobProgress)] == [
        JobProgress(fraction=0.5, step="train")
    ]
    lines = [line for e in events.published if isinstance(e, JobLog) for line in e.lines]
    assert lines == [
        f"[theodolite] $ {command}",
        "device cpu run run-1",
        "warm" if warm else "cold",
    ]


def test_jobs_learn_their_device(tmp_path: Path) -> None:
    job_id = uuid.uuid4()
    cpu = job_environment(WorkerSettings(work_dir=tmp_path), job_id, "r", "1", home=tmp_path)
    gpu = job_environment(
        WorkerSettings(work_dir=tmp_path, gpus="0"), job_id, "r", "1", home=tmp_path
    )
    assert (cpu["THEODOLITE_DEVICE"], cpu["CUDA_VISIBLE_DEVICES"]) == ("cpu", "")
    assert (gpu["THEODOLITE_DEVICE"], gpu["CUDA_VISIBLE_DEVICES"]) == ("cuda", "0")


def test_the_warm_pool_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().warm_pool
    monkeypatch.setenv("THEODOLITE_WORKER_WARM_POOL", "false")
    assert not WorkerSettings().warm_pool
