"""The steps the two clients take differently, side by side; everything else is written once,
in ``aio.py``, and ``sync.py`` is generated from it (unasync maps ``asleep`` to ``sleep`` and
``asave`` to ``save``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def asave(to: Path, name: str, chunks: AsyncIterator[bytes]) -> Path:
    """Write the chunks to ``to`` (a file, or a folder to put ``name`` in), off the event loop."""
    target = to / name if await asyncio.to_thread(to.is_dir) else to
    handle = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in chunks:
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)
    return target


def save(to: Path, name: str, chunks: Iterator[bytes]) -> Path:
    """Write the chunks to ``to`` (a file, or a folder to put ``name`` in)."""
    target = to / name if to.is_dir() else to
    with target.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return target
