"""``python -m theodolite_worker.rattler_create --prefix P --channel C -- SPEC...``: solve SPECs
from the channels with py-rattler and install them into P, as ``micromamba create -p`` would.

A child process of the environment builder, so a build runs like the program back end's: with
the builder's allow-listed environment, its timeout, and its output (the solver's message on a
failure) in the job's error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path


async def create(prefix: str, channels: list[str], specs: list[str], cache_dir: str) -> int:
    import rattler

    records = await rattler.solve(
        sources=channels, specs=specs, virtual_packages=rattler.VirtualPackage.detect()
    )
    print(f"solved {len(specs)} specs to {len(records)} packages", flush=True)
    for record in records:
        print(f"  {record.name.normalized} {record.version} {record.build}", flush=True)
    await rattler.install(records, prefix, cache_dir=Path(cache_dir), show_progress=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rattler_create")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--channel", action="append", default=[])
    parser.add_argument("specs", nargs="*")
    options = parser.parse_args(argv)
    if not options.channel:
        parser.error("at least one --channel: py-rattler has no default channels here")
    try:
        return asyncio.run(
            create(options.prefix, options.channel, options.specs, options.cache_dir)
        )
    except Exception as exc:  # the solver's or the installer's message is the build's error
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Without finalisation: py-rattler 0.28's background threads may still touch the interpreter
    # while it shuts down (a crash now and then, "PyGILState_Release ... finalizing", after the
    # install is complete). Nothing is left to clean up.
    os._exit(code)
