"""MLflow for a sandboxed job: a worker-side proxy scoped to the job's own run, and the forwarder
that brings it into the job's network namespace.

A job inside its sandbox has no network and no credentials. The worker runs one proxy per job
(``server.job_tracking_proxy``) on a unix socket in the job's folder, which the sandbox
bind-mounts; inside, ``forward`` listens on ``127.0.0.1:<port>`` (the job's own loopback) and
copies bytes to that socket. The job's ``MLFLOW_TRACKING_URI`` is ``http://127.0.0.1:<port>``.

This package's ``__init__`` imports nothing: the warm pool's forkserver imports ``forward``
(standard library only) and must stay cheap; only the worker imports ``server`` (aiohttp).
"""
