"""The worker's periodic work: heartbeats and plugin announcements, on ``PeriodicService``."""

from __future__ import annotations

import logging
import os
import socket

from theodolite import topology
from theodolite.broker import MessageBroker
from theodolite.events import WorkerHeartbeat, WorkerPlugins, make_event
from theodolite.periodic import PeriodicService
from theodolite_worker.downloads import offered
from theodolite_worker.plugins import installed_plugins
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.state import WorkerState

log = logging.getLogger(__name__)


class Heartbeat(PeriodicService):
    """Says the worker is alive, what it runs and whether it stops; a last one when it ends."""

    name = "heartbeat"

    def __init__(
        self, *, broker: MessageBroker, settings: WorkerSettings, state: WorkerState
    ) -> None:
        super().__init__(interval_s=settings.heartbeat_interval_s)
        self._broker = broker
        self._settings = settings
        self._state = state

    async def run_once(self) -> None:
        await self.send()

    async def send(self) -> None:
        """One heartbeat, now."""
        heartbeat = WorkerHeartbeat(
            worker_id=self._settings.worker_id,
            queue=self._settings.queue,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            slots=self._settings.slots,
            busy=self._state.busy,
            started_at=self._state.started_at,
            stopping=self._state.stopping,
            running_jobs=list(self._state.controls),
            isolation=self._state.isolation,
            environments=self._state.environments,
            downloads=offered(self._settings),
        )
        event = make_event(heartbeat, producer=self._settings.worker_id)
        await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)

    async def teardown(self) -> None:
        # The api learns at once that this worker is gone, instead of when its heartbeats stop.
        try:
            await self.send()
        except Exception:
            log.warning("could not announce shutdown", exc_info=True)


class PluginAnnouncer(PeriodicService):
    """Tells the api which plugins jobs here can use, so it validates graphs against them."""

    # Found once, in a subprocess (no plugin is imported into the worker); announced when the
    # worker starts, then now and then, so an api that lost it learns it again.

    name = "plugin announcements"

    def __init__(self, *, broker: MessageBroker, settings: WorkerSettings) -> None:
        super().__init__(interval_s=settings.plugin_announce_interval_s)
        self._broker = broker
        self._settings = settings
        self._plugins: WorkerPlugins | None = None
        self._just_announced = False

    async def setup(self) -> None:
        # Awaited by start(): a worker that subscribes after it has said what its jobs can use.
        try:
            await self.announce()
        except Exception:
            log.warning("plugin announcement failed", exc_info=True)
        self._just_announced = True

    async def run_once(self) -> None:
        if self._just_announced:  # the first round comes straight after setup's announcement
            self._just_announced = False
            return
        await self.announce()

    async def announce(self) -> None:
        """Discover the plugins (the first time) and publish them."""
        if self._plugins is None:
            found = await installed_plugins()
            self._plugins = WorkerPlugins(
                worker_id=self._settings.worker_id, queue=self._settings.queue, **found
            )
            log.info(
                "plugins for jobs: %s%s",
                ", ".join(f"{p.name}=={p.version}" for p in self._plugins.plugins) or "none",
                f" (not loadable: {self._plugins.errors})" if self._plugins.errors else "",
            )
        event = make_event(self._plugins, producer=self._settings.worker_id)
        await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)
