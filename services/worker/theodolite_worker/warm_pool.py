"""A warm pool of job processes: a forkserver that imported the job libraries once.

Each job is a fresh fork of the forkserver (its own process and process group, nothing shared
with other jobs) whose code starts within milliseconds instead of the ~10 s a new interpreter
spends importing mlflow, prefect, torch and art. Traps, measured (ARCHITECTURE.md §7):

- the forkserver only imports, never computes (one torch op there hangs every child's first);
- it starts with the worker's environment as it is then (Prefect reads its settings at import)
  and each child replaces it with the job's own before the job's code runs;
- a module that fails to import is skipped silently: a probe child reports what was loaded.

multiprocessing keeps one forkserver per process, so a process has at most one started pool.
The forkserver imports this module too: what it defines must cost nothing to import.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from theodolite_worker import warm_child
from theodolite_worker.process import JobProcess
from theodolite_worker.settings import DEFAULT_WARM_PRELOAD
from theodolite_worker.warm_child import WarmCommand
from theodolite_worker.warm_command import parse_warm_command

if TYPE_CHECKING:
    from theodolite_worker.sandboxing import JobSandbox

log = logging.getLogger(__name__)

# Imported by the forkserver first: the child's entry point, and what a child would otherwise
# import again when multiprocessing re-runs the worker's main script in it as ``__mp_main__``.
SERVER_MODULES = (
    "theodolite_worker.warm_server_init",  # first: leave the worker's process group
    "theodolite_worker.warm_child",
    # What a sandboxed job's arguments unpickle to, and how it enters its sandbox.
    "theodolite.sandbox.enter",
    "theodolite.sandbox.cgroups",
    "theodolite.sandbox.policy",
    "theodolite_worker.sandbox_entry",
    "theodolite_worker.warm_pool",
    "theodolite_worker.__main__",
)

_owner_lock = threading.Lock()
_owner: WarmPool | None = None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _warm_sandbox(sandbox: JobSandbox | None) -> warm_child.WarmSandbox | None:
    if sandbox is None:
        return None
    return warm_child.WarmSandbox(sandbox.policy, sandbox.cgroup, sandbox.forwards)


class WarmProcess(JobProcess):
    """A job running in a forkserver child; its output arrives through a pipe."""

    warm = True

    def __init__(
        self, process: ForkServerProcess, stdout: asyncio.StreamReader, pipe: asyncio.BaseTransport
    ) -> None:
        assert process.pid is not None
        super().__init__(process.pid, stdout)
        self._process = process
        self._pipe = pipe

    @classmethod
    async def start(
        cls,
        context: ForkServerContext,
        command: WarmCommand,
        *,
        cwd: Path,
        env: dict[str, str],
        sandbox: JobSandbox | None = None,
    ) -> WarmProcess:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        sender = Connection(write_fd, readable=False)  # multiprocessing passes it to the child
        try:
            pipe_file = os.fdopen(read_fd, "rb", buffering=0)
            stdout = asyncio.StreamReader()
            try:
                pipe, _ = await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(stdout), pipe_file
                )
            except BaseException:
                pipe_file.close()
                raise
            process = context.Process(
                target=warm_child.run_job,
                args=(command, str(cwd), env, sender, _warm_sandbox(sandbox)),
                name="theodolite-job",
            )
            try:
                # On the loop's thread, as start() also polls the other children: a few ms.
                process.start()
            except BaseException:
                pipe.close()
                raise
        finally:
            sender.close()
        return cls(process, stdout, pipe)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def kill_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # Not yet the leader of its own group (setpgid is its first step): signal it alone.
            if self.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)
        except PermissionError:
            pass

    async def close(self) -> None:
        self._pipe.close()
        for _ in range(100):
            if self._process.exitcode is not None:
                self._process.join()
                self._process.close()
                return
            await asyncio.sleep(0.01)


class _ForkServerInternals(Protocol):
    """The private parts of multiprocessing's ``ForkServer`` used here (typeshed omits them)."""

    _forkserver_pid: int | None

    def _stop(self) -> None: ...


def _server() -> _ForkServerInternals:
    # multiprocessing has no public way to see or stop its forkserver: its private parts are
    # the only handle on it.
    return cast(_ForkServerInternals, multiprocessing.forkserver._forkserver)


def _server_died() -> bool:
    """Whether the forkserver process has exited (left for multiprocessing to reap)."""
    pid = _server()._forkserver_pid
    if pid is None:
        return False
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class WarmPool:
    """A forkserver with ``preload`` imported (whichever of them are installed).

    ``start()`` blocks until the forkserver has imported everything (seconds): run it in a
    thread. Until it is ready, ``spawn`` returns None and jobs run cold. Should the forkserver
    die, the pool starts another in the background, and jobs run cold meanwhile.
    """

    def __init__(self, preload: Sequence[str] = DEFAULT_WARM_PRELOAD) -> None:
        self._preload = list(preload)
        self._context = multiprocessing.get_context("forkserver")
        assert isinstance(self._context, ForkServerContext)
        self._lock = threading.Lock()
        self._ready = False
        self._closing = False
        self.preloaded: list[str] = []
        self.skipped: list[str] = []
        self.startup_s: float | None = None
        self._began = 0.0
        self._wanted: list[str] = []

    @property
    def ready(self) -> bool:
        return self._ready

    def start(self) -> bool:
        """Start the forkserver and wait until it is warm; False (logged) when it cannot.

        The forkserver dies with the thread that calls this (the kernel's parent-death signal
        follows the forking thread): call it from one that lives as long as the pool, or call
        ``launch`` there and ``warm_up`` from any thread.
        """
        return self.launch() and self.warm_up()

    def launch(self) -> bool:
        """Start the forkserver (quick: it imports in the background); False when it cannot."""
        global _owner
        with self._lock, _owner_lock:
            if self._closing:
                return False
            if _owner is not None:
                raise RuntimeError("a warm pool is already started in this process")
            _owner = self
        return self._launch()

    def _launch(self) -> bool:
        self._began = time.monotonic()
        self._wanted = [name for name in self._preload if _installed(name)]
        try:
            with self._lock:
                if self._closing:
                    return False
                self._context.set_forkserver_preload([*SERVER_MODULES, *self._wanted])
                multiprocessing.forkserver.ensure_running()
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        if not self._closing:
            log.warning("warm pool could not start (%r): jobs run in new interpreters", exc)
        self.shutdown()

    def warm_up(self, probe_timeout_s: float = 600.0) -> bool:
        """Wait until the launched forkserver has imported everything (seconds); False when
        it failed (logged)."""
        try:
            loaded = self._probe(self._wanted, probe_timeout_s)
        except Exception as exc:
            self._failed(exc)
            return False
        with self._lock:
            if self._closing:
                return False
            self.preloaded = loaded
            self.skipped = [name for name in self._preload if name not in loaded]
            self.startup_s = time.monotonic() - self._began
            self._ready = True
        log.info(
            "warm pool ready in %.1f s: preloaded %s; skipped (not installed or failed) %s",
            self.startup_s,
            ", ".join(self.preloaded) or "nothing",
            ", ".join(self.skipped) or "nothing",
        )
        return True

    def _probe(self, modules: list[str], timeout_s: float) -> list[str]:
        receiver, sender = self._context.Pipe(duplex=False)
        try:
            process = self._context.Process(
                target=warm_child.probe, args=(sender, modules), name="theodolite-warm-probe"
            )
            process.start()  # returns once the forkserver has imported everything and forked
            sender.close()
            if not receiver.poll(timeout_s):
                raise TimeoutError(f"the warm pool's probe did not answer in {timeout_s} s")
            loaded: list[str] = receiver.recv()
            process.join(timeout_s)
            if process.exitcode != 0:
                raise RuntimeError(f"the warm pool's probe exited with {process.exitcode}")
            process.close()
            return loaded
        finally:
            sender.close()
            receiver.close()

    async def spawn(
        self, command: str, *, cwd: Path, env: dict[str, str], sandbox: JobSandbox | None = None
    ) -> JobProcess | None:
        """The job started in the pool, or None when the command or the pool is not fit."""
        if not self._ready:
            return None
        parsed = parse_warm_command(command)
        if parsed is None or (parsed.kind == "script" and not (cwd / parsed.target).is_file()):
            return None
        if _server_died():
            # multiprocessing would start a new one right here, blocking for the imports.
            log.warning("the warm pool's forkserver died: restarting it, jobs run cold meanwhile")
            self._ready = False
            # Launched here, on the loop's thread, which lives as long as the worker: the new
            # forkserver dies with it (see ``start``). Only the wait goes to a thread.
            if self._launch():
                threading.Thread(target=self.warm_up, name="warm-pool-restart", daemon=True).start()
            return None
        try:
            return await WarmProcess.start(self._context, parsed, cwd=cwd, env=env, sandbox=sandbox)
        except Exception:
            log.warning("warm start failed: this and later jobs run cold", exc_info=True)
            self._ready = False
            return None

    def shutdown(self) -> None:
        """Stop the forkserver (jobs started from it die with it)."""
        global _owner
        with self._lock:
            self._closing = True
            self._ready = False
            with _owner_lock:
                if _owner is not self:
                    return
                _owner = None
                server = _server()
                if server._forkserver_pid is not None:
                    # It may still be importing: don't wait for that to finish.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(server._forkserver_pid, signal.SIGTERM)
                server._stop()


@contextlib.asynccontextmanager
async def running_warm_pool(preload: Sequence[str]) -> AsyncIterator[WarmPool]:
    """A pool warming up in the background (jobs that come before it is warm run cold)."""
    pool = WarmPool(preload)
    # It takes the environment as it is now (Prefect reads its settings at import). Launched on
    # the loop's thread, so that the forkserver dies with the worker (see ``WarmPool.start``).
    starting = asyncio.ensure_future(asyncio.to_thread(pool.warm_up)) if pool.launch() else None
    try:
        yield pool
    finally:
        await asyncio.to_thread(pool.shutdown)
        if starting is not None:
            try:
                await starting
            except Exception:
                log.warning("the warm pool failed to start", exc_info=True)
