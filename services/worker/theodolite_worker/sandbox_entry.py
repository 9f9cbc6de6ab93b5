"""Inside a job's sandbox, before the job's code: the loopback forwarders that are its only way
out (MLflow through the worker's tracking proxy, Prefect through the worker's relay), each a
unix socket the worker serves in a folder bound into the sandbox.

Warm jobs call ``fork_forwards`` after entering the sandbox (the forwarders get a process of
their own, off the job's GIL); cold jobs run
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

from theodolite_worker.orphans import die_with_parent
from theodolite_worker.tracking_proxy.forward import (
    LOOPBACK,
    listen_on_loopback,
    serve_forever,
    start_forwarder,
)


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
        _point_at(forward, forwarder.port)


def fork_forwards(forwards: Sequence[LoopbackForward]) -> int | None:
    """The warm job's forwarders, in a process of their own forked from this one (its pid; None
    when there is nothing to forward). Threads in the job's own interpreter would wait for its
    GIL behind whatever the job computes, and every MLflow or Prefect call would pay for it.
    The forwarding process dies with the job: it is in the job's PID namespace, and asks for
    SIGKILL at its parent's death as well."""
    if not forwards:
        return None
    listeners = [listen_on_loopback(forward.port) for forward in forwards]
    for forward, listener in zip(forwards, listeners, strict=True):
        _point_at(forward, listener.getsockname()[1])
    pid = os.fork()
    if pid == 0:  # the forwarding process: nothing of the job's runs here
        try:
            die_with_parent()
            serve_forever(
                [(listener, f.socket_path) for f, listener in zip(forwards, listeners, strict=True)]
            )
        finally:
            os._exit(0)
    for listener in listeners:
        listener.close()  # the forwarding process holds them
    return pid


def _point_at(forward: LoopbackForward, port: int) -> None:
    if forward.url_env:
        os.environ[forward.url_env] = f"http://{LOOPBACK}:{port}{forward.url_path}"


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
