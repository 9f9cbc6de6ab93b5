"""A problem found in user input: where it is and what is wrong. Validators collect every
problem rather than stopping at the first, so users fix everything in one round."""

from __future__ import annotations

from pydantic import BaseModel


class Problem(BaseModel):
    field: str
    message: str


class ProblemsError(ValueError):
    """Input with one or more problems."""

    def __init__(self, title: str, problems: list[Problem]) -> None:
        super().__init__(f"{title}: " + "; ".join(f"{p.field}: {p.message}" for p in problems))
        self.title = title
        self.problems = problems


_LINE_WHITESPACE = frozenset("\t\n\r")


def control_character_message(text: str, *, allow_whitespace: bool) -> str | None:
    """What is wrong with ``text`` when it holds a control character (NUL, escape, DEL, ...;
    with ``allow_whitespace``, tabs and line breaks pass), else None. PostgreSQL refuses NUL
    in text, and control characters in names make logs and terminals lie."""
    for position, char in enumerate(text):
        code = ord(char)
        if (code < 0x20 or 0x7F <= code < 0xA0) and not (
            allow_whitespace and char in _LINE_WHITESPACE
        ):
            return f"control character U+{code:04X} at position {position} is not allowed"
    return None
