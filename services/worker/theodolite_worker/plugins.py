"""The plugins installed in the worker's environment, as jobs would see them."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

DISCOVERY_TIMEOUT_S = 120.0


async def installed_plugins() -> dict[str, Any]:
    """``{"plugins": [...], "errors": {...}}`` from a subprocess with the job's interpreter."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "theodolite.sdk.discovery",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DISCOVERY_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"plugin discovery took longer than {DISCOVERY_TIMEOUT_S} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"plugin discovery failed: {err.decode(errors='replace')[-2000:]}")
    found: dict[str, Any] = json.loads(out)
    return found
