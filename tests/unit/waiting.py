"""Waiting for a background task's effect without betting on how fast a loaded machine is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once ``check()`` is true; fail after ``timeout_s`` (a generous bound, not a goal)."""
    async with asyncio.timeout(timeout_s):
        # A plain attribute set by the code under test: there is no event to wait on.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
