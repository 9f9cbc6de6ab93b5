"""``theodolite/client/sync.py`` from ``theodolite/client/aio.py``: the one source of both clients.

unasync rewrites aio.py token by token (``async def`` to ``def``, ``await`` dropped,
``__aenter__`` to ``__enter__``, the names in SYNC_NAMES). sync.py is not committed: the build
hook (``hatch_build.py``) writes it into every wheel, and into the source tree for an editable
install; ``make client-sync`` writes it again after a change to aio.py. It needs only unasync
and the standard library, so that it can run in pip's build environment.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]  # unasync ships no type information

PROJECT = Path(__file__).resolve().parents[1]
AIO = Path("theodolite", "client", "aio.py")
SYNC = Path("theodolite", "client", "sync.py")
REGENERATE = "make client-sync"

HEADER = f"""\
# Generated from aio.py by shared/client/scripts/unasync_aio.py when the client is built (or by
# `{REGENERATE}`): do not edit, and do not commit. Change aio.py instead.
"""
DOCSTRING = '"""The synchronous client (httpx.Client): aio.py without the awaits."""'

# Beyond unasync's own (__aenter__, AsyncIterator, ...): httpx's async names, the client's own
# classes (unasync would make AsyncJob "SyncJob") and the primitives of _io.py.
SYNC_NAMES = {
    "AsyncBaseTransport": "BaseTransport",
    "AsyncClient": "Client",
    "AsyncJob": "Job",
    "AsyncTheodoliteClient": "TheodoliteClient",
    "aclose": "close",
    "aiter_bytes": "iter_bytes",
    "aiter_lines": "iter_lines",
    "aread": "read",
    "asave": "save",
    "asleep": "sleep",
}


def _unasynced(source: Path) -> str:
    """unasync's rewrite of one file (it works on folders named by a rule)."""
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / "_async" / source.name
        staged.parent.mkdir()
        shutil.copyfile(source, staged)
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=SYNC_NAMES)
        unasync.unasync_files([str(staged)], [rule])
        return (Path(folder) / "_sync" / source.name).read_text()


def _with_own_docstring(source: str) -> str:
    """The generated module's docstring instead of aio.py's, and the header above it."""
    docstring = ast.parse(source).body[0]
    if not isinstance(docstring, ast.Expr) or not isinstance(docstring.value, ast.Constant):
        raise ValueError("aio.py must begin with its docstring")
    lines = source.splitlines(keepends=True)
    assert docstring.end_lineno is not None
    return HEADER + DOCSTRING + "\n" + "".join(lines[docstring.end_lineno :])


def sync_source(aio: Path) -> str:
    """The text of ``sync.py`` for the ``aio.py`` at that path."""
    return _with_own_docstring(_unasynced(aio))


def write_sync(project: Path = PROJECT, to: Path | None = None) -> Path:
    """Write sync.py for the project's aio.py, beside it unless ``to`` says where; its path."""
    target = project / SYNC if to is None else to
    target.write_text(sync_source(project / AIO))
    return target
