"""Imported first, and only, by the warm pool's forkserver.

It leaves the worker's process group, so a signal sent to the whole group (Ctrl-C in a
terminal, ``kill -TERM -PGID``) reaches the worker, which stops gracefully, and not the
forkserver under its running jobs. It ends with the worker however the worker ends: the
forkserver's own watch (EOF on its "alive" pipe) never fires while a job runs, as every job
holds that pipe's write end, so the kernel kills it instead (``PR_SET_PDEATHSIG``), and each
job it forks is killed when it dies, from the first instruction after the fork on.
"""

import os

from theodolite_worker.orphans import die_with_parent

try:
    os.setsid()
except OSError:  # already a session leader
    pass
die_with_parent()

_FORKSERVER_PID = os.getpid()
_armed = True  # in the forkserver; a job (its child) disarms it for its own forks


def _job_dies_with_forkserver() -> None:
    global _armed
    if _armed:
        _armed = False  # what the job forks itself is its sandbox's business
        die_with_parent(_FORKSERVER_PID)


os.register_at_fork(after_in_child=_job_dies_with_forkserver)
