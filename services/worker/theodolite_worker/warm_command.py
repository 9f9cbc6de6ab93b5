"""Which entry point commands may start warm: those bash would run as plain Python.

``python SCRIPT.py ARGS…``, ``python -m MODULE ARGS…`` and ``theodolite ARGS…`` (the same as
``python -m theodolite ARGS…``), with nothing that bash would read differently from
``shlex.split``: no operators, redirections, expansions, globs or comments outside quotes.
Anything else runs with bash, as before.
"""

from __future__ import annotations

import shlex
import sys

from theodolite_worker.warm_child import WarmCommand

_PYTHONS = {"python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}"}
# Outside quotes: operators, redirections, expansions, globs, comments, escapes.
_SHELL_SYNTAX = frozenset(";|&<>()$`*?[]{}~#!\\")


def _plain_words(command: str) -> list[str] | None:
    """The words of ``command`` when bash would run it as they are, else None."""
    if "\n" in command or "\r" in command:
        return None
    quote = None
    for char in command:
        if quote == "'":
            quote = None if char == "'" else quote
        elif quote == '"':
            if char in '$`\\"':
                if char != '"':
                    return None
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _SHELL_SYNTAX:
            return None
    if quote is not None:
        return None
    return shlex.split(command)


def parse_warm_command(command: str) -> WarmCommand | None:
    """``python SCRIPT.py ARGS…``, ``python -m MODULE ARGS…`` or ``theodolite ARGS…``, else None."""
    words = _plain_words(command)
    if not words:
        return None
    program, *rest = words
    if program == "theodolite":
        return WarmCommand("module", "theodolite", tuple(rest))
    if program not in _PYTHONS and program != sys.executable:
        return None
    while rest and rest[0] == "-u":  # unbuffered: warm children always are
        rest.pop(0)
    if len(rest) >= 2 and rest[0] == "-m":
        return WarmCommand("module", rest[1], tuple(rest[2:]))
    if rest and not rest[0].startswith("-") and rest[0].endswith(".py"):
        return WarmCommand("script", rest[0], tuple(rest[1:]))
    return None
