"""What an uploader is shown of a failed validation: the file and line inside the plugin, with
paths relative to the plugin, and nothing of the host (no path outside the plugin, no
environment value: the validation's environment is empty anyway).

Used both inside the sandbox (tracebacks of the plugin's import, the build's output) and by
the registry for whatever the sandbox printed when it crashed.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from pathlib import Path

OUTSIDE = "<outside the plugin>"
# An absolute path as tools print it: a slash-started run of path characters.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.\-~<])/[\w.+\-@%=~]+(?:/[\w.+\-@%=~]*)*")
MAX_FRAMES = 8
MAX_REPORT_CHARS = 1500


def scrub(text: str, roots: Sequence[Path]) -> str:
    """``text`` with every path under one of ``roots`` made relative to it and every other
    absolute path replaced by OUTSIDE."""
    for root in sorted({str(r) for r in roots}, key=len, reverse=True):
        text = text.replace(root + "/", "").replace(root, ".")
    return _ABSOLUTE_PATH.sub(OUTSIDE, text)


def _inside(filename: str, roots: Sequence[Path]) -> str | None:
    path = Path(filename)
    for root in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return None


def plugin_frames(exc: BaseException, roots: Sequence[Path]) -> list[tuple[str, int, str]]:
    """The traceback's frames in the plugin's own files: (relative file, line, function)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    found = []
    for frame in frames:
        relative = _inside(frame.filename, roots)
        if relative is not None:
            found.append((relative, frame.lineno or 0, frame.name))
    return found[-MAX_FRAMES:]


def import_problem(exc: BaseException, roots: Sequence[Path]) -> tuple[str, str]:
    """(kind, reason) for an exception raised while importing the plugin."""
    if isinstance(exc, SyntaxError):
        where = _inside(exc.filename or "", roots) or OUTSIDE
        return "syntax", scrub(f"syntax error in {where}:{exc.lineno}: {exc.msg}", roots)
    if isinstance(exc, MemoryError):
        return "memory", "importing the plugin ran out of memory (memory limit)"
    frames = plugin_frames(exc, roots)
    where = f" ({frames[-1][0]}:{frames[-1][1]})" if frames else ""
    message = scrub(f"{type(exc).__name__}: {exc}", roots)
    reason = f"importing the plugin failed{where}: {message}"
    if len(frames) > 1:
        lines = [f'  File "{file}", line {line}, in {name}' for file, line, name in frames]
        reason += "\nTraceback (the plugin's own files):\n" + "\n".join(lines)
    return "import", reason[:MAX_REPORT_CHARS]


def output_tail(output: str, roots: Sequence[Path], limit: int = MAX_REPORT_CHARS) -> str:
    """The end of a tool's output (pip's, the interpreter's), scrubbed."""
    return scrub(output, roots)[-limit:]
