"""``theodolite-worker``: serve one queue until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from theodolite.observability.logs import configure_logging
from theodolite.observability.tracing import configure_tracing
from theodolite_worker.settings import WorkerSettings


async def serve(settings: WorkerSettings) -> None:
    from theodolite_worker.worker import Worker  # imports mlflow: after the environment is set

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(settings):
        await stop.wait()
        logging.getLogger(__name__).info("stopping: finishing running jobs")


def main() -> None:
    settings = WorkerSettings()
    # Every line of a worker's names it (a job's lines name the job and attempt too).
    configure_logging(settings.log, service="worker", static={"worker_id": settings.worker_id})
    # A quick, clear failure beats MLflow's default of retrying for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for name in ("DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY"):
        os.environ.setdefault(name, "1" if name == "DO_NOT_TRACK" else "true")
    provider = configure_tracing(settings.tracing, service="theodolite-worker")
    try:
        asyncio.run(serve(settings))
    finally:
        if provider is not None:
            provider.shutdown()  # the last spans are exported


if __name__ == "__main__":
    main()
