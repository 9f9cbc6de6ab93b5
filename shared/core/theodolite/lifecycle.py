"""The job state machine: the one place that says which transitions are legal."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    # Submitted with dependencies (``depends_on``) that have not all succeeded yet.
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    # A dependency ended without succeeding: the job never runs.
    SKIPPED = "skipped"


TERMINAL_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.TIMED_OUT,
        JobStatus.SKIPPED,
    }
)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # Queued once every dependency succeeded; skipped when one ended otherwise; failed when a
    # pipeline stage's parameters, resolved from its dependencies, do not fit.
    JobStatus.WAITING: frozenset(
        {JobStatus.QUEUED, JobStatus.SKIPPED, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.TIMED_OUT,
            JobStatus.LOST,
            # Retried after a failure (when asked), or handed back by a worker shutting down.
            JobStatus.QUEUED,
        }
    ),
    # A lost job is re-queued while its retry budget lasts, else it fails.
    JobStatus.LOST: frozenset({JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class IllegalTransition(ValueError):
    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"a job cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL_STATUSES


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise IllegalTransition unless ``current -> target`` is allowed."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(current, target)
