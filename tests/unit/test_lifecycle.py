import pytest

from theodolite.lifecycle import (
    TERMINAL_STATUSES,
    IllegalTransition,
    JobStatus,
    check_transition,
)


def test_happy_path_is_allowed() -> None:
    check_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    check_transition(JobStatus.RUNNING, JobStatus.SUCCEEDED)
    check_transition(JobStatus.RUNNING, JobStatus.FAILED)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_states_are_final(terminal: JobStatus) -> None:
    for target in JobStatus:
        with pytest.raises(IllegalTransition):
            check_transition(terminal, target)


def test_a_job_cannot_succeed_without_running_directly() -> None:
    with pytest.raises(IllegalTransition, match="from queued to succeeded"):
        check_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)


@pytest.mark.parametrize("outcome", [JobStatus.SUCCEEDED, JobStatus.TIMED_OUT, JobStatus.LOST])
def test_only_a_claimed_job_runs_and_ends_by_its_worker(outcome: JobStatus) -> None:
    # The claim is the one way to running; what only a running job can report needs it first.
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.QUEUED, outcome)
    check_transition(JobStatus.RUNNING, outcome)
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.SUCCEEDED, JobStatus.RUNNING)


def test_lost_jobs_are_requeued_or_failed() -> None:
    check_transition(JobStatus.RUNNING, JobStatus.LOST)
    check_transition(JobStatus.LOST, JobStatus.QUEUED)
    check_transition(JobStatus.LOST, JobStatus.FAILED)


def test_a_waiting_job_is_queued_skipped_cancelled_or_failed_and_never_runs_directly() -> None:
    # failed: a pipeline stage whose parameters, resolved from its dependencies, do not fit.
    for target in (JobStatus.QUEUED, JobStatus.SKIPPED, JobStatus.CANCELLED, JobStatus.FAILED):
        check_transition(JobStatus.WAITING, target)
    for target in (JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.TIMED_OUT):
        with pytest.raises(IllegalTransition, match=f"from waiting to {target.value}"):
            check_transition(JobStatus.WAITING, target)
    assert JobStatus.SKIPPED in TERMINAL_STATUSES and JobStatus.WAITING not in TERMINAL_STATUSES
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.QUEUED, JobStatus.WAITING)  # a job waits only from the start
