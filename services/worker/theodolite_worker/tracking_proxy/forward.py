"""Inside the sandbox: ``127.0.0.1:<port>`` (the job's own loopback) copied to the worker's
tracking proxy on a unix socket in the job's folder. Standard library only, and nothing done at
import: the warm pool's forkserver imports this module.

``start_forwarder(socket_path)`` serves from daemon threads for as long as the process lives;
``listen_on_loopback`` and ``serve_forever`` let a process of its own do it
(``theodolite_worker.sandbox_entry``: the warm job's forked forwarding process, and the cold
job's wrapper).

Port 0 takes any free port: the only safe choice where the job shares the host's network (weaker
isolation, when namespaces are not allowed); in a network namespace of its own any port will do.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_CHUNK = 256 * 1024


def tracking_uri_for(port: int) -> str:
    """What the job's MLflow client is given: the forwarder on its own loopback."""
    return f"http://{LOOPBACK}:{port}"


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until ``source`` ends, then pass the end on (half-close: HTTP bodies end cleanly)."""
    try:
        while chunk := source.recv(_CHUNK):
            target.sendall(chunk)
    except OSError:
        pass  # either side went away: the other half's pump sees it too
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_connection(client: socket.socket, socket_path: str) -> None:
    # Each piece is passed on as it comes: with Nagle's wait against the client's delayed ACK,
    # an answer sent as headers then body would stall about 40 ms.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        # The proxy is gone (the job is ending): the client sees a closed connection.
        upstream.close()
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    upstream.close()
    client.close()


@dataclass
class Forwarder:
    """A running forwarder: ``port`` is where it listens, ``tracking_uri`` what the job uses."""

    port: int
    socket_path: str
    _listener: socket.socket

    @property
    def tracking_uri(self) -> str:
        return tracking_uri_for(self.port)

    def close(self) -> None:
        """Stop accepting (connections already open finish on their own threads)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()


def _accept_loop(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # closed
        threading.Thread(target=_serve_connection, args=(client, socket_path), daemon=True).start()


def listen_on_loopback(port: int = 0) -> socket.socket:
    """A listening socket on ``127.0.0.1:port`` (0: any free port); ``OSError`` when it cannot."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, port))
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


def serve_forever(routes: Sequence[tuple[socket.socket, str]]) -> None:
    """Forward each listener's connections to its unix socket until the process ends (the
    process of its own that a warm job forks for its forwarders)."""
    threads = [threading.Thread(target=_accept_loop, args=route, daemon=True) for route in routes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def start_forwarder(socket_path: str | Path, port: int = 0) -> Forwarder:
    """Listen on ``127.0.0.1:port`` (0: any free port) and forward every connection to the unix
    socket ``socket_path``, from daemon threads. Call it where the job's code will run: after
    entering the sandbox's network namespace (whose loopback must be up), before the job starts;
    set the job's ``MLFLOW_TRACKING_URI`` to the returned ``tracking_uri``.

    Raises ``OSError`` when it cannot listen (loopback down, port taken).
    """
    listener = listen_on_loopback(port)
    forwarder = Forwarder(
        port=listener.getsockname()[1], socket_path=str(socket_path), _listener=listener
    )
    threading.Thread(
        target=_accept_loop,
        args=(listener, forwarder.socket_path),
        name="theodolite-tracking-forwarder",
        daemon=True,
    ).start()
    return forwarder
