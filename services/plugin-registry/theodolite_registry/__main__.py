"""``theodolite-plugin-registry``: serve the registry with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from theodolite_registry.app import create_app
from theodolite_registry.settings import RegistrySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = RegistrySettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
