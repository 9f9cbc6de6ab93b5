"""What the api's loops share: a round reads and writes the database and talks to the broker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.broker import Broker
from theodolite.periodic import PeriodicService

BATCH = 100  # rows one round takes at the most: a round holds its row locks briefly


class DatabaseLoop(PeriodicService):
    """A ``PeriodicService`` holding the api's session factory and broker."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        broker: Broker,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._broker = broker
