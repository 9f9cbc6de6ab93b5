"""The plugin registry over HTTP: version resolution at submission (authoritative, so a job
submitted after a publish was acknowledged gets the new version) and the proxied routes."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx

from theodolite.problems import Problem, ProblemsError, filename_problem
from theodolite.web.errors import DependencyUnavailable

PLUGINS_PATH = "/api/v1/plugins"
# On whose behalf the api publishes or yanks (the registry's deps read them; its port is
# internal, so only the api sets them). Without them the registry acts for the system group.
GROUP_HEADER = "X-Theodolite-Group"
ADMINISTRATOR_HEADER = "X-Theodolite-Administrator"


def acting_for(group_id: uuid.UUID, *, administrator: bool = False) -> dict[str, str]:
    """The headers naming the group a publish or yank is for (and an administrator's override:
    any plugin name)."""
    headers = {GROUP_HEADER: str(group_id)}
    if administrator:
        headers[ADMINISTRATOR_HEADER] = "true"
    return headers


def plugin_path(*segments: str) -> str:
    """The registry's path of a plugin, a version or its parts, each segment percent-quoted:
    ``x?y`` stays one segment instead of becoming ``x`` and a query."""
    return "/".join([PLUGINS_PATH, *(quote(segment, safe="") for segment in segments)])


class RegistryClient:
    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = client

    async def resolve(
        self, plugins: set[str], pins: dict[str, str]
    ) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
        try:
            response = await self._http.post(
                f"{self.base_url}/internal/resolve",
                json={"plugins": sorted(plugins), "pins": pins},
            )
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"the plugin registry did not answer: {exc}") from exc
        if response.status_code != 200:
            raise DependencyUnavailable(f"the plugin registry answered {response.status_code}")
        body = response.json()
        return body["resolved"], [Problem.model_validate(p) for p in body["problems"]]

    async def catalogue(self) -> dict[str, dict[str, Any]]:
        """The latest published version of every plugin in the registry."""
        response = await self.forward("GET", "/internal/catalogue")
        if response.status_code != 200:
            raise DependencyUnavailable(f"the plugin registry answered {response.status_code}")
        result: dict[str, dict[str, Any]] = response.json()
        return result

    async def upload(
        self, filename: str | None, data: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """Forward a plugin upload (``headers``: ``acting_for``); a file name the registry would
        refuse is refused here."""
        if (problem := filename_problem(filename)) is not None:
            raise ProblemsError("invalid upload", [problem])
        return await self.forward(
            "POST", PLUGINS_PATH, files={"archive": (filename or "plugin", data)}, headers=headers
        )

    async def forward(self, request_method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(request_method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"the plugin registry did not answer: {exc}") from exc
