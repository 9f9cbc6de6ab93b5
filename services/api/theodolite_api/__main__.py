"""``theodolite-api``: serve the public api and the workers' internal listener with uvicorn, in one
process on one event loop (they share the lifespan's engine, broker and relay)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LifespanType

from theodolite.observability.logs import configure_logging
from theodolite.observability.tracing import configure_tracing
from theodolite_api.app import create_app, create_internal_app
from theodolite_api.settings import ApiSettings


class _Server(uvicorn.Server):
    """A server that leaves signals to ``serve``, which stops both servers on one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: FastAPI, host: str, port: int, lifespan: LifespanType = "on") -> _Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # uvicorn's lines go through the service's own handler (JSON or text)
        lifespan=lifespan,
        timeout_graceful_shutdown=10,
    )
    return _Server(config)


async def serve(settings: ApiSettings) -> bool:
    """Run both listeners until SIGINT or SIGTERM; False when the public one did not start."""
    public_app = create_app(settings)
    internal_app = create_internal_app(public_app)
    public = _server(public_app, settings.host, settings.port)
    # No lifespan: the public app's builds the shared state.
    internal = _server(internal_app, settings.internal_host, settings.internal_port, lifespan="off")

    def stop() -> None:
        for server in (public, internal):
            server.force_exit = server.should_exit  # a second signal: no more waiting
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    async def serve_internal() -> None:
        # Claims need the state the public lifespan builds: listen once it is built.
        while not public.started and not public.should_exit:  # noqa: ASYNC110 - uvicorn's flag
            await asyncio.sleep(0.05)
        if public.started:
            await internal.serve()

    async def serve_public() -> None:
        try:
            await public.serve()
        finally:
            internal.should_exit = True  # the state goes with the public app

    await asyncio.gather(serve_public(), serve_internal())
    return public.started


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log, service="api")
    provider = configure_tracing(settings.tracing, service="theodolite-api")
    try:
        started = asyncio.run(serve(settings))
    finally:
        if provider is not None:
            provider.shutdown()  # the last spans are exported
    if not started:
        sys.exit(3)  # as uvicorn.run does when the app did not start


if __name__ == "__main__":
    main()
