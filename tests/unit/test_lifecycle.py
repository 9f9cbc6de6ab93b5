import pytest

from theodolite.lifecycle import (
    TERMINAL_STATUSES,
    IllegalTransition,
    JobStatus,
    check_transition,
    transition_path,
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


def test_out_of_order_terminal_event_implies_running() -> None:
    assert transition_path(JobStatus.QUEUED, JobStatus.SUCCEEDED) == [
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert transition_path(JobStatus.QUEUED, JobStatus.RUNNING) == [JobStatus.RUNNING]
    with pytest.raises(IllegalTransition):
        transition_path(JobStatus.SUCCEEDED, JobStatus.RUNNING)


def test_lost_jobs_are_requeued_or_failed() -> None:
    check_transition(JobStatus.RUNNING, JobStatus.LOST)
    check_transition(JobStatus.LOST, JobStatus.QUEUED)
    check_transition(JobStatus.LOST, JobStatus.FAILED)
