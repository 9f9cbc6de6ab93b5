"""A unix socket in a job's sandbox folder that the worker copies to a TCP service (Prefect's
api): graph jobs report their flow runs there, while the job itself has no network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            if writer.can_write_eof():
                writer.write_eof()


def _remove(socket_path: Path) -> None:
    socket_path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def tcp_relay(socket_path: Path, host: str, port: int) -> AsyncIterator[Path]:
    """Serve ``socket_path`` (any uid may connect) while the block runs, each connection copied
    both ways to ``host:port``."""
    connections: set[asyncio.Task[None]] = set()

    async def serve(inside: asyncio.StreamReader, inside_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            outside, outside_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            log.warning("relay to %s:%d: %s", host, port, exc)
            inside_writer.close()
            connections.discard(task)
            return
        try:
            await asyncio.gather(_pump(inside, outside_writer), _pump(outside, inside_writer))
        finally:
            for writer in (inside_writer, outside_writer):
                writer.close()
            connections.discard(task)

    _remove(socket_path)
    server = await asyncio.start_unix_server(serve, path=str(socket_path))
    os.chmod(socket_path, 0o666)
    try:
        yield socket_path
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
        _remove(socket_path)
