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


MAX_FILENAME_LENGTH = 255


def filename_problem(filename: str | None) -> Problem | None:
    """What is wrong with an uploaded file's name (it is stored and shown), if anything."""
    if filename is None:
        return None
    message = control_character_message(filename, allow_whitespace=False)
    if message is None and len(filename) > MAX_FILENAME_LENGTH:
        message = f"longer than {MAX_FILENAME_LENGTH} characters"
    return None if message is None else Problem(field="archive.filename", message=message)


# A plugin's name and version as they stand in a URL path: a PEP 508 project name (letters,
# digits, and ., _ or - between them; PEP 503 compares them normalised) and a PEP 440 version in
# its lower-case spelling. No inline flags: the patterns stand in the OpenAPI document too.
PLUGIN_NAME_PATTERN = r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$"
PLUGIN_VERSION_PATTERN = (
    r"^v?([0-9]+!)?[0-9]+(\.[0-9]+)*"  # epoch, release
    r"([-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"  # pre-release
    r"(-[0-9]+|[-_.]?(post|rev|r)[-_.]?[0-9]*)?"  # post-release
    r"([-_.]?dev[-_.]?[0-9]*)?"  # development release
    r"(\+[A-Za-z0-9]+([-_.][A-Za-z0-9]+)*)?$"  # local version label
)
