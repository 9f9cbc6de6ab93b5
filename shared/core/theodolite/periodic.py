"""Periodic work on one small base class: start, stop, an interval, one round at a time.

Modelled on Prefect's ``server/services/base.py`` (``LoopService``): a subclass says what one
round does (``run_once``) and how often; the base class owns the task, survives a failed round
(logged, retried next interval) and can be woken early (``wake``), e.g. by a new outbox row.
Use it as an async context manager, or ``start()`` / ``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Self

log = logging.getLogger(__name__)


class PeriodicService:
    """Runs ``run_once`` every ``interval_s`` seconds (sooner when woken) until stopped."""

    name: str = "periodic service"

    def __init__(self, *, interval_s: float, name: str | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        if name is not None:
            self.name = name
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.rounds = 0
        self.failed_rounds = 0

    async def run_once(self) -> None:
        """One round of work. A raised exception is logged; the next round comes as usual."""
        raise NotImplementedError

    async def setup(self) -> None:
        """Before the first round (optional)."""

    async def teardown(self) -> None:
        """After the last round (optional)."""

    def wake(self) -> None:
        """Start the next round now instead of at the end of the interval."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} runs already")
        await self.setup()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self.teardown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failed_rounds += 1
                log.warning("%s: round failed", self.name, exc_info=True)
            self.rounds += 1
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
