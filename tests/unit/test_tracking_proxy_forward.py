"""The in-sandbox forwarder: loopback TCP copied to the tracking proxy's unix socket, as a daemon
thread (warm children) or as a wrapper around a cold job's command."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from theodolite_worker.tracking_proxy.forward import start_forwarder

WRAPPER = [sys.executable, "-m", "theodolite_worker.sandbox_entry"]  # the cold jobs' wrapper


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tp-fw-") as folder:  # short: a unix socket's path
        yield Path(folder)


def shouting_server(path: Path) -> socket.socket:
    """A unix socket server answering each connection's whole input upper-cased, then closing."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                received = b""
                while chunk := connection.recv(65536):
                    received += chunk
                connection.sendall(received.upper())

    threading.Thread(target=serve, daemon=True).start()
    return server


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)  # the end of a request body passes through
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        return answer


def test_the_forwarder_copies_both_ways_and_passes_the_end_on(socket_dir: Path) -> None:
    server = shouting_server(socket_dir / "mlflow.sock")
    forwarder = start_forwarder(socket_dir / "mlflow.sock")
    try:
        assert forwarder.tracking_uri == f"http://127.0.0.1:{forwarder.port}"
        big = b"metric " * 200_000  # more than one chunk each way
        assert exchange(forwarder.port, big) == big.upper()
        answers: list[bytes] = []
        threads = [
            threading.Thread(
                target=lambda i=i: answers.append(exchange(forwarder.port, b"job %d" % i))
            )
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == sorted(b"JOB %d" % i for i in range(8))
    finally:
        forwarder.close()
        server.close()


def test_without_a_proxy_a_connection_is_closed_not_hung(socket_dir: Path) -> None:
    forwarder = start_forwarder(socket_dir / "absent.sock")
    try:
        try:
            answer = exchange(forwarder.port, b"GET / HTTP/1.1\r\n\r\n")
        except TimeoutError:
            raise  # hung: what this test is about
        except OSError:  # reset, or already closed by the time the request was sent
            answer = b""
        assert answer == b""
    finally:
        forwarder.close()


def test_the_wrapper_gives_its_command_the_tracking_uri_and_returns_its_status(
    socket_dir: Path,
) -> None:
    script = "import os, sys; print(os.environ['MLFLOW_TRACKING_URI']); sys.exit(7)"
    done = subprocess.run(
        [
            *WRAPPER,
            f"--forward=0,MLFLOW_TRACKING_URI,,{socket_dir / 'mlflow.sock'}",
            "--",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 7, done.stderr
    assert done.stdout.startswith("http://127.0.0.1:")


def test_a_command_killed_by_a_signal_exits_as_a_shell_reports_it(socket_dir: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    done = subprocess.run(
        [*WRAPPER, f"--forward=0,,,{socket_dir / 's'}", "--", sys.executable, "-c", script],
        timeout=60,
    )
    assert done.returncode == 128 + 9


def test_the_wrapper_refuses_a_missing_command(socket_dir: Path) -> None:
    done = subprocess.run(
        [*WRAPPER, f"--forward=0,,,{socket_dir / 's'}", "--"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no command given" in done.stderr


def test_importing_the_forwarder_loads_only_the_standard_library() -> None:
    """The warm pool's forkserver imports it: no aiohttp, no mlflow, nothing heavy."""
    probe = (
        "import sys; import theodolite_worker.tracking_proxy.forward; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'mlflow', 'yarl', 'theodolite'} or m.endswith('tracking_proxy.server')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
