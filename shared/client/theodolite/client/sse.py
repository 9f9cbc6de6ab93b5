"""Server-sent events, parsed line by line as the WHATWG spec says (enough of it for us)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawEvent:
    event: str
    data: str
    id: str | None  # the id this event carried, if any


class SseDecoder:
    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> RawEvent | None:
        """One line (without its end); an event when the line completes one."""
        if not line:
            if not self._data and not self._event:
                self._id = None
                return None
            event = RawEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None
