"""App factory of the plugin registry: ``create_app(settings)``; the lifespan owns the engine,
broker, object store and the bucket reconciler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from theodolite.storage import ObjectStore
from theodolite.web.errors import install_error_handlers
from theodolite.web.lifespan import open_broker, open_database
from theodolite.web.observed import TELEMETRY, ObservedRequests
from theodolite_registry.loops.bucket_reconciler import BucketReconciler
from theodolite_registry.publishing import Publisher
from theodolite_registry.routes import health, internal, metrics, plugins
from theodolite_registry.sandboxing import ValidationSandbox
from theodolite_registry.settings import RegistrySettings
from theodolite_registry.state import RegistryState


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: RegistrySettings = app.state.settings
    async with AsyncExitStack() as stack:
        engine, sessions = await open_database(
            stack, settings.db, migrate=settings.migrate_on_start
        )
        # The registry declares no job queues: the delivery limit its broker is given is moot.
        broker = await open_broker(stack, settings.broker, client_name="theodolite-plugin-registry")
        store = ObjectStore(settings.storage)
        await asyncio.to_thread(store.ensure_bucket, settings.storage.plugin_bucket)
        sandbox = ValidationSandbox(
            accept_weak_isolation=settings.validation_accept_weak_isolation,
            uid_base=settings.validation_uid_base,
        )
        await asyncio.to_thread(sandbox.probe)  # logs what validations get, before any runs
        publisher = Publisher(settings=settings, store=store, broker=broker, sandbox=sandbox)
        app.state.core = RegistryState(
            settings=settings, engine=engine, sessions=sessions, store=store, publisher=publisher
        )
        # Entered last, so it stops first: no round runs against a closed broker or engine.
        await stack.enter_async_context(
            BucketReconciler(
                sessions=sessions,
                store=store,
                bucket=settings.storage.plugin_bucket,
                publisher=publisher,
                interval_s=settings.reconcile_interval_s,
            )
        )
        yield


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    app = FastAPI(
        title="Theodolite plugin registry", version="0.1.0", lifespan=lifespan, telemetry=TELEMETRY
    )
    app.state.settings = settings or RegistrySettings()
    app.add_middleware(ObservedRequests, service="plugin-registry")
    install_error_handlers(app)
    app.include_router(plugins.router)
    app.include_router(internal.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app
