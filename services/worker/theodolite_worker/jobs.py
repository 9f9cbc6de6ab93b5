"""One job attempt, end to end: MLflow run, archive, command, events."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from theodolite.archives import ArchiveLimits, extract_archive
from theodolite.events import (
    JobCancelled,
    JobFailed,
    JobLog,
    JobProgress,
    JobReleased,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    JobTimedOut,
)
from theodolite.mlproject import MLPROJECT_FILENAME, parse_mlproject, render_command
from theodolite.problems import ProblemsError
from theodolite.sdk.protocol import PLUGINS_ENV, RESULT_FILE_ENV
from theodolite.storage import IntegrityError, ObjectNotFound
from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.execution import (
    ExecutionOptions,
    ExecutionResult,
    JobCommand,
    JobExecution,
    JobLauncher,
    storable,
)
from theodolite_worker.job_events import JobEventPublisher
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.process import ProcessSpawner
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.tracking import JobRunTracker

log = logging.getLogger(__name__)


class JobSetupError(Exception):
    """The job could not start: its archive or entry point is unusable."""


@dataclass
class JobControl:
    """How the worker stops a running attempt, whether or not its process has started yet."""

    reason: str | None = None  # "cancel" or "shutdown": the first one asked
    execution: JobExecution | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if self.execution is not None:
            self.execution.cancel()

    def attach(self, execution: JobExecution) -> None:
        """The attempt's process has started: a stop asked while it was prepared applies now."""
        self.execution = execution
        if self.reason is not None:
            execution.cancel()


def job_environment(
    settings: WorkerSettings, job_id: uuid.UUID, run_id: str, experiment_id: str
) -> dict[str, str]:
    env = dict(os.environ)
    # MLflow Projects would take ``python`` from PATH; jobs get the worker's own interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": experiment_id,
            "THEODOLITE_JOB_ID": str(job_id),
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": settings.gpus or "",
            # Which device the job's code should use (the SDK reads it).
            "THEODOLITE_DEVICE": "cuda" if settings.gpus else "cpu",
        }
    )
    return env


def _reported_error(result_file: Path) -> str | None:
    """What the job's code said went wrong (a graph names its failed step), if it said."""
    try:
        reported = json.loads(result_file.read_text())
    except (OSError, ValueError):
        return None
    error = reported.get("error") if isinstance(reported, dict) else None
    return storable(str(error)) if error else None


class JobRunner:
    def __init__(
        self,
        *,
        settings: WorkerSettings,
        cache: ArchiveCache,
        tracker: JobRunTracker,
        plugins: PluginCache | None = None,
        warm_pool: ProcessSpawner | None = None,
    ) -> None:
        self._settings = settings
        self._plugins = plugins
        self._launcher = JobLauncher(ExecutionOptions.from_settings(settings), warm_pool=warm_pool)
        self._cache = cache
        self._tracker = tracker
        self._limits = ArchiveLimits(**settings.archive_limits.model_dump())

    async def _prepare(self, job: JobSubmitted, job_dir: Path) -> str:
        try:
            data = await self._cache.get(job.archive_sha256)
        except (ObjectNotFound, IntegrityError) as exc:
            raise JobSetupError(f"entry point archive unusable: {exc}") from exc
        project_dir = job_dir / "project"
        try:
            await asyncio.to_thread(extract_archive, data, project_dir, self._limits)
            project = parse_mlproject((project_dir / MLPROJECT_FILENAME).read_text())
        except (ProblemsError, OSError) as exc:
            raise JobSetupError(f"entry point archive unusable: {exc}") from exc
        spec = project.entry_points.get(job.entry_point)
        if spec is None:
            raise JobSetupError(f"the archive has no entry point {job.entry_point!r}")
        return render_command(spec, job.params, project_dir)

    async def _plugin_folders(self, job: JobSubmitted) -> dict[str, dict[str, str]]:
        """The job's pinned registry plugins, fetched: what its process imports, exactly."""
        folders = {}
        for name, pin in job.plugins.items():
            if pin.source != "registry":
                continue  # installed in this environment
            if self._plugins is None:
                raise JobSetupError(f"plugin {name}=={pin.version}: this worker has no cache")
            try:
                folder = await self._plugins.ensure_pin(pin)
            except Exception as exc:
                raise JobSetupError(f"plugin {name}=={pin.version} unavailable: {exc}") from exc
            folders[name] = {"path": str(folder), "version": pin.version}
        return folders

    async def run(
        self,
        job_id: uuid.UUID,
        attempt: int,
        job: JobSubmitted,
        events: JobEventPublisher,
        control: JobControl | None = None,
    ) -> None:
        """Run the attempt and publish its events; the terminal one is confirmed on return."""
        job_dir = self._settings.work_dir / "jobs" / f"{job_id}-{attempt}"
        job_dir.mkdir(parents=True, exist_ok=True)
        run_id: str | None = None
        try:
            run_id = await self._tracker.start(job_id, attempt, job)
            await events.publish(
                JobStarted(worker_id=self._settings.worker_id, mlflow_run_id=run_id)
            )
            command = await self._prepare(job, job_dir)
            await events.publish(JobLog(lines=[f"[theodolite] $ {command}"]))
            log_file = job_dir / "output.log"

            async def send_lines(lines: list[str]) -> None:
                await events.publish(JobLog(lines=lines))

            async def send_progress(progress: JobProgress) -> None:
                await events.publish(progress)

            env = job_environment(self._settings, job_id, run_id, job.mlflow_experiment_id)
            result_file = job_dir / "result.json"
            env[RESULT_FILE_ENV] = str(result_file)
            env[PLUGINS_ENV] = json.dumps(await self._plugin_folders(job))

            execution = await self._launcher.start(
                JobCommand(
                    command,
                    cwd=job_dir / "project",
                    env=env,
                    log_file=log_file,
                    timeout_s=job.timeout_s,
                ),
                log_sink=send_lines,
                progress_sink=send_progress,
            )
            if control is not None:
                control.attach(execution)
            result = await execution.wait()
            if log_file.exists():
                await self._tracker.log_artifact(run_id, log_file, "logs")
            await self._report(events, run_id, job, result, result_file, control)
        except JobSetupError as exc:
            await self._fail(events, str(exc), run_id)
        except Exception as exc:
            log.exception("job %s attempt %s failed in the worker", job_id, attempt)
            await self._fail(events, f"worker error: {type(exc).__name__}: {exc}", run_id)
        finally:
            if not self._settings.keep_job_dirs:
                await asyncio.to_thread(shutil.rmtree, job_dir, True)

    async def _report(
        self,
        events: JobEventPublisher,
        run_id: str,
        job: JobSubmitted,
        result: ExecutionResult,
        result_file: Path,
        control: JobControl | None,
    ) -> None:
        """Close the MLflow run and publish the attempt's terminal event."""
        tail = result.log_tail
        if result.stopped and control is not None and control.reason == "shutdown":
            await self._tracker.finish(run_id, succeeded=False, killed=True)
            await events.publish(
                JobReleased(reason="its worker shut down before it ended", mlflow_run_id=run_id)
            )
        elif result.stopped:
            await self._tracker.finish(run_id, succeeded=False, killed=True)
            await events.publish(JobCancelled(mlflow_run_id=run_id, log_tail=tail))
        elif result.timed_out:
            assert job.timeout_s is not None
            await self._tracker.finish(run_id, succeeded=False, killed=True)
            await events.publish(
                JobTimedOut(timeout_s=job.timeout_s, mlflow_run_id=run_id, log_tail=tail)
            )
        elif result.exit_code == 0:
            await self._tracker.finish(run_id, succeeded=True)
            await events.publish(JobSucceeded(mlflow_run_id=run_id, exit_code=0, log_tail=tail))
        else:
            await self._tracker.finish(run_id, succeeded=False)
            reason = _reported_error(result_file) or (
                f"the entry point exited with status {result.exit_code}"
            )
            await events.publish(
                JobFailed(
                    reason=reason, mlflow_run_id=run_id, exit_code=result.exit_code, log_tail=tail
                )
            )

    async def _fail(self, events: JobEventPublisher, reason: str, run_id: str | None) -> None:
        if run_id is not None:
            try:
                await self._tracker.finish(run_id, succeeded=False)
            except Exception:
                log.exception("could not mark MLflow run %s failed", run_id)
        await events.publish(JobLog(lines=[f"[theodolite] {reason}"]))
        await events.publish(JobFailed(reason=reason, mlflow_run_id=run_id, infrastructure=True))
