"""The job message (``job.submitted``) as the api's record says it: what the outbox sends, and
what a worker's claim must match, so a message forged on the broker for a real job (other
parameters, another archive) is never run."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.db.tables import EntryPointArchive, Experiment, Job
from theodolite.events import JobSubmitted, PluginPin, make_event
from theodolite_api.repositories import outbox as outbox_repo

PRODUCER = "api"


def job_message(job: Job, experiment: Experiment, archive: EntryPointArchive) -> JobSubmitted:
    return JobSubmitted(
        experiment_id=experiment.id,
        mlflow_experiment_id=experiment.mlflow_experiment_id,
        entrypoint_id=archive.id,
        archive_sha256=archive.sha256,
        entry_point=job.entry_point,
        params=job.params,
        queue=job.queue,
        timeout_s=job.timeout_s,
        plugins={
            name: PluginPin.model_validate(pin) for name, pin in (job.plugin_versions or {}).items()
        },
        limits=job.limits,
        run_tags=job.run_tags or {},
        env_manager=job.env_manager,
        readable_experiments=job.readable_experiments or [],
    )


async def recorded_message(session: AsyncSession, job: Job) -> JobSubmitted | None:
    """The job's message from its rows; None when one of them is gone."""
    experiment = await session.get(Experiment, job.experiment_id)
    archive = await session.get(EntryPointArchive, job.entrypoint_id)
    if experiment is None or archive is None:
        return None
    return job_message(job, experiment, archive)


def differences(received: JobSubmitted, recorded: JobSubmitted) -> list[str]:
    """The fields in which a worker's message differs from the record."""
    mine, theirs = received.model_dump(mode="json"), recorded.model_dump(mode="json")
    names = mine.keys() | theirs.keys()
    return sorted(name for name in names if mine.get(name) != theirs.get(name))


def enqueue_attempt(
    *, session: AsyncSession, job: Job, experiment: Experiment, archive: EntryPointArchive
) -> None:
    """Put ``job.submitted`` for the job's current attempt in the outbox (same transaction)."""
    event = make_event(
        job_message(job, experiment, archive),
        producer=PRODUCER,
        job_id=job.id,
        attempt=job.attempt,
        seq=0,
    )
    outbox_repo.add(
        session=session,
        envelope=event,
        exchange=topology.JOBS_EXCHANGE.name,
        routing_key=job.queue,
    )
