"""A job's process must not outlive its worker: if the worker dies (SIGKILL, machine gone),
the api re-queues the job, and a survivor would run beside the next attempt.

The chain is worker → warm pool's forkserver → warm job, and worker → ``bash -c`` (cold job):
each link asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), and the
sandbox's PID namespace takes whatever the job itself started along with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Linux: SIGKILL this process when its parent dies (kept across exec). Elsewhere a no-op.

    The kernel's "parent" is the thread that forked this process: fork from a thread that lives
    as long as the parent process does. With ``parent_pid``, a parent that died before the
    request (this process was already handed to init) ends this process at once.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
