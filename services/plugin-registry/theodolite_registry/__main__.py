"""``theodolite-plugin-registry``: serve the registry with uvicorn."""

from __future__ import annotations

import uvicorn

from theodolite.observability.logs import configure_logging
from theodolite.observability.tracing import configure_tracing
from theodolite_registry.app import create_app
from theodolite_registry.settings import RegistrySettings


def main() -> None:
    settings = RegistrySettings()
    configure_logging(settings.log, service="plugin-registry")
    provider = configure_tracing(settings.tracing, service="theodolite-plugin-registry")
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            log_config=None,  # uvicorn's lines go through the service's own handler
        )
    finally:
        if provider is not None:
            provider.shutdown()


if __name__ == "__main__":
    main()
