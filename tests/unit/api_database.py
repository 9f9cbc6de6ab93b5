"""A throwaway database on the machine's PostgreSQL (127.0.0.1:5432, trust auth) for unit tests
of api code that needs one: created per test, dropped after. Skips when no server answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

import theodolite.db.status_tables
import theodolite.db.tables  # noqa: F401 (registers the tables)
from theodolite.db.tables import EntryPointArchive, Experiment, Job, Queue, utcnow
from theodolite.lifecycle import JobStatus

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    try:
        admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    name = f"theodolite_unit_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        yield async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def new_job(session: AsyncSession, **fields: object) -> Job:
    """A job row with the experiment, archive and queue it needs, status queued, attempt 1."""
    experiment = Experiment(name=f"exp-{uuid.uuid4().hex[:8]}", mlflow_experiment_id="1")
    archive = EntryPointArchive(
        sha256=uuid.uuid4().hex,
        size_bytes=1,
        archive_format="tar.gz",
        entry_points={"main": {"command": "true", "parameters": {}}},
    )
    queue = await session.get(Queue, "cpu") or Queue(name="cpu")
    session.add_all([experiment, archive, queue])
    await session.flush()
    now = utcnow()
    values: dict[str, object] = {
        "experiment_id": experiment.id,
        "entrypoint_id": archive.id,
        "entry_point": "main",
        "params": {},
        "queue": "cpu",
        "status": JobStatus.QUEUED.value,
        "attempt": 1,
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
    }
    job = Job(**{**values, **fields})
    session.add(job)
    await session.flush()
    return job
