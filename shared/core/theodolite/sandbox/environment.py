"""The environment of a sandbox: built from an allow-list, never copied from the worker's.

The worker's own environment holds the broker, database and S3 credentials; a job that printed
it saw them all. Here nothing is inherited but the names in `INHERITED` (and `LC_*`); the job's
own variables must be named in `JOB_NAMES` or start with a prefix in `JOB_PREFIXES` (or be
allowed explicitly by the caller), so a credential cannot ride in by accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# Taken from the worker's environment when set there.
INHERITED = frozenset({"PATH", "LANG", "TZ"})
INHERITED_PREFIXES = ("LC_",)
# Proxy settings, only when configured (passed as `proxies`), in both spellings tools read.
PROXY_NAMES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"})
# What a job's start may set: its ids, its run, its devices, interpreter switches.
JOB_NAMES = frozenset(
    {
        "HOME",
        "PATH",
        # getpass.getuser() reads these first: the sandbox's uid has no /etc/passwd entry.
        "USER",
        "LOGNAME",
        "PWD",
        "TMPDIR",
        "MLFLOW_RUN_ID",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_EXPERIMENT_ID",
        # A conda_env's prefix, as conda's activation sets it (the prefix is read-only there).
        "CONDA_PREFIX",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PYTHONHASHSEED",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }
)
JOB_PREFIXES = ("THEODOLITE_JOB_", "THEODOLITE_PLUGIN_", "MLFLOW_HTTP_REQUEST_")
# HOME when the job sets none: the worker's (/root) is not inside the sandbox.
DEFAULT_HOME = "/tmp"


def is_job_name(name: str, allow: Iterable[str] = ()) -> bool:
    """Whether a job may set this variable."""
    return name in JOB_NAMES or name.startswith(JOB_PREFIXES) or name in set(allow)


def sandbox_environment(
    job_vars: Mapping[str, str],
    *,
    proxies: Mapping[str, str] | None = None,
    allow: Iterable[str] = (),
    inherit_from: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of one sandbox: allow-listed inherited names, proxies, the job's.

    Raises ValueError naming any job variable outside the allow-list (a programming error in
    the caller, never silently dropped) or a proxy key that is not a proxy setting.
    """
    source = os.environ if inherit_from is None else inherit_from
    allowed = set(allow)
    refused = sorted(name for name in job_vars if not is_job_name(name, allowed))
    if refused:
        raise ValueError(f"not allowed in a sandbox's environment: {', '.join(refused)}")
    environment = {
        name: value
        for name, value in source.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES)
    }
    environment["HOME"] = DEFAULT_HOME
    for name, value in (proxies or {}).items():
        if name.upper() not in PROXY_NAMES:
            raise ValueError(f"not a proxy setting: {name}")
        environment[name.upper()] = value
        environment[name.lower()] = value
    environment.update(job_vars)
    return environment


def plugin_environment() -> dict[str, str]:
    """The environment of a plugin validation: nothing but a PATH and a HOME."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": DEFAULT_HOME, "LANG": "C.UTF-8"}
