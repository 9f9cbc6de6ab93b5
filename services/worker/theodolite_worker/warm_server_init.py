"""Imported first, and only, by the warm pool's forkserver: it leaves the worker's process
group, so a signal sent to the whole group (Ctrl-C in a terminal, ``kill -TERM -PGID``) reaches
the worker, which stops gracefully, and not the forkserver under its running jobs. The
forkserver still ends with the worker (it watches its parent's pipe)."""

import os

try:
    os.setsid()
except OSError:  # already a session leader
    pass
