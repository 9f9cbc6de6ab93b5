"""Generate the synchronous client from the asynchronous one: ``make client-sync``.

``theodolite/client/aio.py`` is the one source; unasync rewrites it token by token (``async def``
to ``def``, ``await`` dropped, ``__aenter__`` to ``__enter__``, the names below) into
``theodolite/client/sync.py``, which ruff then sorts and formats as the repository's code.
``tests/unit/test_client_generated.py`` fails when ``sync.py`` is not what this writes.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]  # unasync ships no type information

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "shared" / "client" / "theodolite" / "client"
SOURCE = CLIENT / "aio.py"
TARGET = CLIENT / "sync.py"
REGENERATE = "make client-sync"

HEADER = f"""\
# Generated from aio.py by shared/client/scripts/unasync_client.py: do not edit.
# Change aio.py, then regenerate with `{REGENERATE}`.
"""
DOCSTRING = '"""The synchronous client (httpx.Client): aio.py without the awaits."""'

# Beyond unasync's own (__aenter__, AsyncIterator, ...): httpx's async names, the client's own
# classes (unasync would make AsyncJob "SyncJob") and the primitives of _io.py.
REPLACEMENTS = {
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
        copy = Path(folder) / "_async" / source.name
        copy.parent.mkdir()
        shutil.copyfile(source, copy)
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(copy)], [rule])
        return (Path(folder) / "_sync" / source.name).read_text()


def _with_own_docstring(source: str) -> str:
    """The generated module's docstring instead of aio.py's, and the header above it."""
    docstring = ast.parse(source).body[0]
    if not isinstance(docstring, ast.Expr) or not isinstance(docstring.value, ast.Constant):
        raise ValueError("aio.py must begin with its docstring")
    lines = source.splitlines(keepends=True)
    assert docstring.end_lineno is not None
    return HEADER + DOCSTRING + "\n" + "".join(lines[docstring.end_lineno :])


def _ruff(source: str, *args: str) -> str:
    """``ruff`` over the source as if it were TARGET, with the repository's settings."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


def sync_source() -> str:
    """The text of ``sync.py`` for the current ``aio.py``."""
    source = _with_own_docstring(_unasynced(SOURCE))
    fixed = _ruff(source, "check", "--fix", "--select=I,F401", "--exit-zero", "--quiet")
    return _ruff(fixed, "format", "--quiet")


def main() -> None:
    TARGET.write_text(sync_source())
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
