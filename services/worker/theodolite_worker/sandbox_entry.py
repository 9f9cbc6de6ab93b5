"""Inside a job's sandbox, before the job's code: the loopback forwarders that are its only way
out (MLflow through the worker's tracking proxy, Prefect through the worker's relay), each a
unix socket the worker serves in a folder bound into the sandbox.

Warm jobs call ``start_forwards`` in-process after entering the sandbox; cold jobs run
``python -m theodolite_worker.sandbox_entry --forward SPEC... -- CMD...`` inside bwrap, which
starts them, runs ``CMD`` and exits with its status. Standard library only, nothing done at
import: the warm pool's forkserver imports this module.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from theodolite_worker.tracking_proxy.forward import LOOPBACK, start_forwarder


@dataclass(frozen=True)
class LoopbackForward:
    """``127.0.0.1:port`` inside (0: any free port) to the unix socket ``socket_path``; the
    variable ``url_env``, if any, is set to the forwarder's URL (with ``url_path``)."""

    socket_path: str
    port: int = 0
    url_env: str = ""
    url_path: str = ""

    def spec(self) -> str:
        """This forward as one command-line word (``PORT,ENV,PATH,SOCKET``)."""
        return ",".join((str(self.port), self.url_env, self.url_path, self.socket_path))

    @classmethod
    def parse(cls, spec: str) -> LoopbackForward:
        port, url_env, url_path, socket_path = spec.split(",", 3)
        return cls(socket_path=socket_path, port=int(port), url_env=url_env, url_path=url_path)


def start_forwards(forwards: Sequence[LoopbackForward]) -> None:
    """Start each forwarder (daemon threads) and point its variable at it in ``os.environ``."""
    for forward in forwards:
        forwarder = start_forwarder(forward.socket_path, forward.port)
        if forward.url_env:
            os.environ[forward.url_env] = f"http://{LOOPBACK}:{forwarder.port}{forward.url_path}"


def _exit_status(returncode: int) -> int:
    """A child killed by signal N exits this wrapper with 128 + N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m theodolite_worker.sandbox_entry",
        description="Start loopback forwarders, then run CMD with their URLs in its environment.",
    )
    parser.add_argument("--forward", action="append", default=[], help="PORT,ENV,PATH,SOCKET")
    parser.add_argument("--chdir", help="the folder CMD runs in")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    try:
        start_forwards([LoopbackForward.parse(spec) for spec in args.forward])
    except OSError as exc:
        print(f"sandbox: cannot start a loopback forwarder: {exc}", file=sys.stderr)
        return 126
    try:
        child = subprocess.Popen(list(command), cwd=args.chdir)
    except OSError as exc:
        print(f"sandbox: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda received, _frame: child.send_signal(received))
    return _exit_status(child.wait())


if __name__ == "__main__":
    sys.exit(main())
