"""Which remote ``path`` values a worker downloads for a job itself, outside the job's sandbox:
``s3://`` from the buckets its operator made readable, ``http(s)://`` where its operator allowed
it. The worker announces what it offers in its heartbeat; the api refuses at submission a value
the job's queue cannot download, and the worker checks again before it fetches."""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import BaseModel, Field

# Fetched by the worker with its own credentials and network, never by the job.
WORKER_SCHEMES = ("s3", "http", "https")
READABLE_BUCKETS_SETTING = "THEODOLITE_WORKER_READABLE_BUCKETS"
HTTP_DOWNLOADS_SETTING = "THEODOLITE_WORKER_HTTP_DOWNLOADS"
# Downloaded by the job itself through its tracking proxy (theodolite_worker.fetch_inputs).
_JOB_FETCHED = "runs:/, models:/, mlflow-artifacts:/"


class DownloadSupport(BaseModel):
    """What a worker downloads for its jobs, announced in its heartbeat."""

    # Each a bucket (all of it) or bucket/prefix (the keys under that folder).
    s3_buckets: list[str] = Field(default_factory=list)
    http: bool = False

    def describe(self) -> str:
        """What it offers, in words."""
        buckets = ", ".join(self.s3_buckets) or "none"
        return f"s3 buckets: {buckets}; http(s): {'yes' if self.http else 'no'}"


def worker_fetched(value: str) -> bool:
    """Whether ``value`` is a remote path the worker (not the job) downloads."""
    return urlparse(value).scheme in WORKER_SCHEMES


def s3_readable(bucket: str, key: str, readable: list[str]) -> bool:
    """Whether ``s3://bucket/key`` lies in one of the ``readable`` buckets or prefixes."""
    for entry in readable:
        name, _, prefix = entry.strip("/").partition("/")
        if name != bucket:
            continue
        if not prefix or key.startswith(prefix.rstrip("/") + "/"):
            return True
    return False


def s3_location(value: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    parsed = urlparse(value)
    return parsed.netloc, parsed.path.lstrip("/")


def download_refusal(value: str, support: DownloadSupport | None, *, queue: str) -> str | None:
    """Why the queue's workers do not download the remote ``path`` value; None when they do (or
    the value is not one they fetch). ``support`` None: no live worker announced any."""
    if not worker_fetched(value):
        return None
    scheme = urlparse(value).scheme
    offered = DownloadSupport() if support is None else support
    if scheme == "s3":
        bucket, key = s3_location(value)
        if bucket and key and s3_readable(bucket, key, offered.s3_buckets):
            return None
        what, setting = f"s3 bucket {bucket!r}", READABLE_BUCKETS_SETTING
    else:
        if offered.http:
            return None
        what, setting = f"{scheme}: downloads", HTTP_DOWNLOADS_SETTING
    return (
        f"{scheme}: paths are not downloaded for jobs on queue {queue!r}: {what} is not allowed "
        f"by its workers ({setting}; the queue offers {offered.describe()}). The worker's own "
        f"credentials and network are not the job's; log the file to MLflow and pass its URI "
        f"({_JOB_FETCHED}), or declare the parameter as uri and read it in the job"
    )


def common_downloads(announced: list[DownloadSupport]) -> DownloadSupport | None:
    """What every one of a queue's workers downloads (a job may reach any); None: none said."""
    if not announced:
        return None
    buckets = [entry for entry in announced[0].s3_buckets]
    for support in announced[1:]:
        buckets = [entry for entry in buckets if entry in support.s3_buckets]
    return DownloadSupport(s3_buckets=buckets, http=all(s.http for s in announced))
