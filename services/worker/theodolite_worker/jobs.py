"""One job attempt, end to end: MLflow run, archive, command, events."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from theodolite.archives import ArchiveLimits, extract_archive
from theodolite.downloads import worker_fetched
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
from theodolite.mlproject import INPUTS_FOLDER, entry_point_in, remote_inputs, render_command
from theodolite.problems import ProblemsError
from theodolite.sandbox.limits import SandboxLimits
from theodolite.sdk.protocol import PLUGINS_ENV, RESULT_FILE_ENV
from theodolite.storage import IntegrityError, ObjectNotFound
from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.containment import breach_after, contained, watching_limits
from theodolite_worker.downloads import Downloader, DownloadFailed, size_text
from theodolite_worker.environments import (
    EnvironmentBuilder,
    EnvironmentBuildError,
    JobEnvironment,
)
from theodolite_worker.execution import (
    ExecutionOptions,
    ExecutionResult,
    JobCommand,
    JobExecution,
    JobLauncher,
    storable,
)
from theodolite_worker.fetch_inputs import INPUTS_SPEC
from theodolite_worker.job_events import JobEventPublisher
from theodolite_worker.observability.metrics import JOB_START
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.process import ProcessSpawner
from theodolite_worker.sandboxing import Sandboxes
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


def _reported_error(result_file: Path) -> str | None:
    """What the job's code said went wrong (a graph names its failed step), if it said."""
    try:
        # The job owns its folder: never follow a link it left there to a file of the worker's.
        fd = os.open(result_file, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as file:
            reported = json.loads(file.read(1024 * 1024))
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
        sandboxes: Sandboxes | None = None,
        environments: EnvironmentBuilder | None = None,
        downloader: Downloader | None = None,
    ) -> None:
        self._settings = settings
        self._environments = environments or EnvironmentBuilder(settings)
        self._sandboxes = sandboxes or Sandboxes(settings, None)
        self._plugins = plugins
        self._launcher = JobLauncher(ExecutionOptions.from_settings(settings), warm_pool=warm_pool)
        self._cache = cache
        self._tracker = tracker
        self._limits = ArchiveLimits(**settings.archive_limits.model_dump())
        self._downloader = downloader or Downloader(settings)

    async def _download(
        self, name: str, uri: str, target: Path, job_dir: Path, events: JobEventPublisher
    ) -> None:
        try:
            size = await self._downloader.fetch(uri, target)
        except DownloadFailed as exc:
            raise JobSetupError(f"could not download parameter {name}: {exc}") from exc
        line = f"parameter {name}: {uri} -> {target.relative_to(job_dir)} ({size_text(size)})"
        await events.publish(JobProgress(message=line))
        await events.publish(JobLog(lines=[f"[theodolite] {line}"]))

    async def _prepare(self, job: JobSubmitted, job_dir: Path, events: JobEventPublisher) -> str:
        try:
            data = await self._cache.get(job.archive_sha256)
        except (ObjectNotFound, IntegrityError) as exc:
            raise JobSetupError(f"entry point archive unusable: {exc}") from exc
        project_dir = job_dir / "project"
        try:
            await asyncio.to_thread(extract_archive, data, project_dir, self._limits)
            spec = entry_point_in(project_dir, job.entry_point)
        except (ProblemsError, OSError) as exc:
            raise JobSetupError(f"entry point archive unusable: {exc}") from exc
        if spec is None:
            raise JobSetupError(f"the archive has no entry point {job.entry_point!r}")
        downloads = remote_inputs(spec, job.params, job_dir)
        command = render_command(spec, job.params, project_dir, downloads)
        # s3:// and http(s):// values are the worker's to fetch, here, outside the sandbox.
        for name, (uri, target) in list(downloads.items()):
            if worker_fetched(uri):
                await self._download(name, uri, target, job_dir, events)
                del downloads[name]
        if not downloads:
            return command
        # Remote path values are fetched by the job itself, before its command, with its own
        # MLflow access (its proxy), never with the worker's.
        spec_file = job_dir / INPUTS_FOLDER / INPUTS_SPEC
        spec_file.parent.mkdir(parents=True, exist_ok=True)
        wanted = {name: {"uri": uri, "target": str(t)} for name, (uri, t) in downloads.items()}
        spec_file.write_text(json.dumps(wanted))
        # The worker's interpreter: a built python_env has no theodolite_worker.
        fetch = (
            f"{shlex.quote(sys.executable)} -m theodolite_worker.fetch_inputs "
            f"{shlex.quote(str(spec_file))}"
        )
        return f"{fetch} && {command}"

    async def _environment(
        self, job: JobSubmitted, project_dir: Path, events: JobEventPublisher
    ) -> JobEnvironment | None:
        """The job's declared environment, built or reused (None: the worker's own)."""

        async def log_line(line: str) -> None:
            await events.publish(JobLog(lines=[line]))

        async def progress(message: str) -> None:
            await events.publish(JobProgress(message=message))

        try:
            return await self._environments.for_job(
                project_dir, job.env_manager, log_line=log_line, progress=progress
            )
        except EnvironmentBuildError as exc:
            raise JobSetupError(str(exc)) from exc

    def _job_limits(self, job: JobSubmitted) -> SandboxLimits:
        requested = job.limits  # the api checked them against the queue's maxima
        try:
            return self._sandboxes.limits_for(requested)
        except ValueError as exc:
            raise JobSetupError(f"the job's limits are not usable: {exc}") from exc

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
        """Run the attempt (just claimed) and publish its events; the terminal one is confirmed
        on return."""
        claimed = time.monotonic()
        job_dir = self._settings.work_dir / "jobs" / f"{job_id}-{attempt}"
        job_dir.mkdir(parents=True, exist_ok=True)
        # Outside the job's folder, which the job owns: it must not swap the log for a link.
        log_file = self._settings.work_dir / "logs" / f"{job_id}-{attempt}" / "output.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        run_id: str | None = None
        try:
            run_id = await self._tracker.start(job_id, attempt, job)
            await events.publish(
                JobStarted(worker_id=self._settings.worker_id, mlflow_run_id=run_id)
            )
            limits = self._job_limits(job)
            command = await self._prepare(job, job_dir, events)
            await events.publish(JobLog(lines=[f"[theodolite] $ {command}"]))
            environment = await self._environment(job, job_dir / "project", events)

            async def send_lines(lines: list[str]) -> None:
                await events.publish(JobLog(lines=lines))

            async def send_progress(progress: JobProgress) -> None:
                await events.publish(progress)

            result_file = job_dir / "result.json"
            plugins = await self._plugin_folders(job)
            async with contained(
                self._sandboxes,
                self._settings,
                job_id=job_id,
                attempt=attempt,
                run_id=run_id,
                run_artifact_uri=self._tracker.artifact_uri(run_id)
                if self._sandboxes.contained
                else None,
                experiment_id=job.mlflow_experiment_id,
                readable_experiments=job.readable_experiments,
                job_dir=job_dir,
                limits=limits,
                read_only=[
                    *(Path(folder["path"]) for folder in plugins.values()),
                    *(environment.read_only if environment else ()),
                ],
                extra_env={
                    RESULT_FILE_ENV: str(result_file),
                    PLUGINS_ENV: json.dumps(plugins),
                    **(environment.path_env if environment else {}),
                },
            ) as containment:
                execution = await self._launcher.start(
                    JobCommand(
                        command,
                        cwd=job_dir / "project",
                        env=containment.env,
                        log_file=log_file,
                        timeout_s=job.timeout_s,
                        sandbox=containment.sandbox,
                        cold=environment is not None and environment.cold,
                    ),
                    log_sink=send_lines,
                    progress_sink=send_progress,
                )
                start = "warm" if execution.warm else "cold"
                JOB_START.labels(self._settings.queue, start).observe(time.monotonic() - claimed)
                if control is not None:
                    control.attach(execution)
                async with watching_limits(
                    containment.sandbox,
                    execution,
                    interval_s=self._settings.limits_poll_interval_s,
                    disk_interval_s=self._settings.disk_poll_interval_s,
                ):
                    result = await execution.wait()
                breach = await asyncio.to_thread(breach_after, result, containment.sandbox)
            if log_file.exists():
                await self._tracker.log_artifact(run_id, log_file, "logs")
            await self._report(events, run_id, job, result, result_file, control, breach)
        except JobSetupError as exc:
            await self._fail(events, str(exc), run_id)
        except Exception as exc:
            log.exception("job %s attempt %s failed in the worker", job_id, attempt)
            await self._fail(events, f"worker error: {type(exc).__name__}: {exc}", run_id)
        finally:
            await asyncio.to_thread(shutil.rmtree, log_file.parent, True)
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
        breach: str | None = None,
    ) -> None:
        """Close the MLflow run and publish the attempt's terminal event."""
        tail = result.log_tail
        if breach is not None:
            await self._tracker.finish(run_id, succeeded=False, killed=True)
            await events.publish(JobLog(lines=[f"[theodolite] {breach}"]))
            await events.publish(
                JobFailed(
                    reason=breach, mlflow_run_id=run_id, exit_code=result.exit_code, log_tail=tail
                )
            )
        elif result.stopped and control is not None and control.reason == "shutdown":
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
