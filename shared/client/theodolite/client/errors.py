"""What the api answers when it refuses: RFC 9457 problem+json, raised as ApiError."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(RuntimeError):
    """An error answer from the api, with its RFC 9457 problem list."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.title: str = body.get("title", "")
        self.detail: str = body.get("detail", "")
        self.problems: list[dict[str, str]] = body.get("problems", [])
        lines = [f"{status} {self.title}: {self.detail}"]
        lines += [f"  - {p['field']}: {p['message']}" for p in self.problems]
        super().__init__("\n".join(lines))

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        if not isinstance(body, dict):
            body = {"detail": str(body)}
        body.setdefault("title", response.reason_phrase)
        return cls(response.status_code, body)
