"""The MLflow run of one job attempt. MLflow's client blocks: every call runs in a thread."""

from __future__ import annotations

import asyncio
import functools
import platform
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from theodolite.events import JobSubmitted

# Recorded on every run: what a result depends on besides the job's own inputs.
PROVENANCE_DISTRIBUTIONS = (
    "adversarial-robustness-toolbox",
    "torch",
    "scikit-learn",
    "numpy",
    "mlflow",
    "prefect",
)


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions in the job's environment (read from metadata: nothing imported).

    Read once per worker process: each lookup scans every folder of ``sys.path`` (about 8 ms for
    the six, on the job path before ``job.started``; issue 16), and what the worker and its warm
    pool have imported cannot change under them. Callers copy it into their tags, never mutate it.
    """
    found = {"python": platform.python_version()}
    for name in PROVENANCE_DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


class JobRunTracker:
    def __init__(self, tracking_uri: str) -> None:
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._artifact_uris: dict[str, str] = {}

    def artifact_uri(self, run_id: str) -> str | None:
        """Where the artifacts of a run this tracker started go (its job's proxy needs it)."""
        return self._artifact_uris.get(run_id)

    async def start(self, job_id: uuid.UUID, attempt: int, job: JobSubmitted) -> str:
        def create() -> str:
            run = self._client.create_run(
                job.mlflow_experiment_id,
                run_name=f"job-{str(job_id)[:8]}-{attempt}",
                tags={
                    # The api's (a pipeline stage's parent run); the worker's own come after.
                    **job.run_tags,
                    "theodolite.job_id": str(job_id),
                    "theodolite.attempt": str(attempt),
                    "theodolite.entrypoint_id": str(job.entrypoint_id),
                    "theodolite.entrypoint_sha256": job.archive_sha256,
                    "theodolite.queue": job.queue,
                    "mlflow.project.entryPoint": job.entry_point,
                    "mlflow.source.type": "PROJECT",
                    "mlflow.source.name": f"theodolite:entrypoint/{job.archive_sha256}",
                    **{f"theodolite.version.{k}": v for k, v in library_versions().items()},
                    **{
                        f"theodolite.plugin.{name}": pin.version
                        for name, pin in sorted(job.plugins.items())
                    },
                },
            )
            run_id = run.info.run_id
            self._artifact_uris[run_id] = run.info.artifact_uri
            if job.params:
                self._client.log_batch(
                    run_id, params=[Param(k, v) for k, v in sorted(job.params.items())]
                )
            return run_id

        return await asyncio.to_thread(create)

    async def tag(self, run_id: str, key: str, value: str) -> None:
        await asyncio.to_thread(self._client.log_batch, run_id, tags=[RunTag(key, value)])

    async def log_artifact(self, run_id: str, path: Path, artifact_path: str) -> None:
        await asyncio.to_thread(self._client.log_artifact, run_id, str(path), artifact_path)

    async def finish(self, run_id: str, *, succeeded: bool, killed: bool = False) -> None:
        status = "KILLED" if killed else "FINISHED" if succeeded else "FAILED"
        self._artifact_uris.pop(run_id, None)
        await asyncio.to_thread(self._client.set_terminated, run_id, status)
