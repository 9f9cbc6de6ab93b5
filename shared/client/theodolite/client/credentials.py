"""Where the client finds its API key: the ``api_key`` argument, else ``THEODOLITE_API_KEY``,
else the config file (``THEODOLITE_CONFIG``, default ``<user config folder>/theodolite/
config.toml``), which holds a key per api URL and must be readable by its owner only:

    [servers."http://127.0.0.1:8000"]
    api_key = "thd_..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import platformdirs

KEY_VARIABLE = "THEODOLITE_API_KEY"
CONFIG_VARIABLE = "THEODOLITE_CONFIG"


class InsecureConfig(RuntimeError):
    """The config file holds keys but others may read it."""


def config_path() -> Path:
    if chosen := os.environ.get(CONFIG_VARIABLE):
        return Path(chosen)
    return platformdirs.user_config_path("theodolite") / "config.toml"


def _servers(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureConfig(f"{path} holds API keys but others may read it: chmod 600 {path}")
    servers: dict[str, dict[str, str]] = tomllib.loads(path.read_text()).get("servers", {})
    return servers


def find_key(base_url: str, api_key: str | None = None) -> str | None:
    """The key to send to the api at ``base_url``, if any is configured."""
    if api_key:
        return api_key
    if from_environment := os.environ.get(KEY_VARIABLE):
        return from_environment
    return _servers(config_path()).get(base_url.rstrip("/"), {}).get("api_key")


def save_key(base_url: str, api_key: str, path: Path | None = None) -> Path:
    """Keep ``api_key`` for ``base_url`` in the config file (made 0600), beside the others."""
    path = path or config_path()
    servers = _servers(path)
    servers[base_url.rstrip("/")] = {**servers.get(base_url.rstrip("/"), {}), "api_key": api_key}
    lines = []
    for url, values in sorted(servers.items()):
        lines.append(f"[servers.{_quoted(url)}]")
        lines.extend(f"{name} = {_quoted(value)}" for name, value in sorted(values.items()))
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write("\n".join(lines))
    return path


def _quoted(text: str) -> str:
    """A TOML basic string (tomllib reads; there is no writer in the standard library)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
