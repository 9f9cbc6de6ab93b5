"""``conda_env`` files, read as ``conda env create`` reads them, and the commands that build one.

Two back ends build the same file: a ``micromamba``, ``mamba`` or ``conda`` program on PATH (the
file's channels by name, or the operator's), or py-rattler in a child process
(``rattler_create``), used only where the operator set the channels, since it has no
configuration of its own to resolve a channel's name against. Either way the requirements are by
name: the build runs outside any job's sandbox, on the worker's network, so a file may not point
it at a URL, a path or a channel of its own choosing. A ``pip:`` list is installed afterwards by
uv into the environment's Python, with the same rules as a ``python_env``'s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# Keys ``conda env create`` reads that change what is installed; ``name`` and ``prefix`` only
# say where, and the worker chooses that.
CONDA_ENV_KEYS = frozenset({"name", "channels", "dependencies", "prefix"})
RATTLER = "py-rattler"
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CondaFileError(ValueError):
    """The conda environment file cannot be built here; the message says why."""


@dataclass(frozen=True)
class CondaEnvFile:
    """What a conda environment file asks for: channels, conda specs and a ``pip:`` list."""

    channels: tuple[str, ...]
    specs: tuple[str, ...]
    pip: tuple[str, ...]


def parse_conda_env(data: bytes, name: str) -> CondaEnvFile:
    """A conda environment file's channels and dependencies; raise CondaFileError."""
    try:
        document = yaml.safe_load(data.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CondaFileError(f"{name} is not YAML: {exc}") from exc
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise CondaFileError(f"{name} must be a YAML mapping")
    unknown = sorted(str(key) for key in document if key not in CONDA_ENV_KEYS)
    if unknown:
        raise CondaFileError(
            f"{name}: {', '.join(unknown)} not supported here (it reads {sorted(CONDA_ENV_KEYS)})"
        )
    channels = document.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise CondaFileError(f"{name}.channels must be a list of channel names")
    specs: list[str] = []
    pip: list[str] = []
    for item in document.get("dependencies") or []:
        if isinstance(item, dict) and set(item) == {"pip"} and isinstance(item["pip"], list):
            if not all(isinstance(requirement, str) for requirement in item["pip"]):
                raise CondaFileError(f"{name}.dependencies.pip must list requirement strings")
            pip += [requirement.strip() for requirement in item["pip"] if requirement.strip()]
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            if str(item).strip():
                specs.append(str(item).strip())
        else:
            raise CondaFileError(
                f"{name}.dependencies lists {item!r}: only package specs and one pip: list"
            )
    return CondaEnvFile(tuple(c.strip() for c in channels), tuple(specs), tuple(pip))


def channel_refusal(channel: str) -> str | None:
    """Why a channel the file names is refused, or None: names only, resolved by the program's
    own configuration (a URL would send the worker's build wherever the file says)."""
    if _CHANNEL_NAME.fullmatch(channel):
        return None
    return (
        f"channel {channel!r} is not a channel name: the worker reaches channels by name only; "
        "an operator may set THEODOLITE_WORKER_CONDA_CHANNELS to a mirror or a file:// channel"
    )


def spec_refusal(spec: str, *, channels_forced: bool) -> str | None:
    """Why the builder will not install the conda spec, or None: a package by name (with its
    version and build), never a URL, a path, a package file or an option."""
    if spec[:1] == "-":
        return f"options among the dependencies ({spec!r}) are not supported"
    channel, separator, rest = spec.rpartition("::")
    if separator and channels_forced:
        return (
            f"{spec!r} names its channel, but this worker solves from its configured channels "
            "only; write the package alone"
        )
    if separator and channel_refusal(channel) is not None:
        return f"{spec!r}: {channel_refusal(channel)}"
    if (
        "://" in spec
        or "/" in rest
        or "\\" in rest
        or rest.strip().lower().endswith((".tar.bz2", ".conda"))
        or not _CHANNEL_NAME.match(rest.strip())
    ):
        return (
            f"{spec!r} is not a package spec by name (a URL or a path?): the worker installs "
            "conda packages by name from its channels only"
        )
    return None


def rattler_available() -> bool:
    """Whether py-rattler is importable by this interpreter (the worker's extra ``conda``)."""
    return importlib.util.find_spec("rattler") is not None


def rattler_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(RATTLER)
    except PackageNotFoundError:
        return "unknown version"


def conda_key(sha256: str, backend: str, channels: tuple[str, ...]) -> str:
    """The cache key of a conda environment: its file, what builds it and from which channels
    (an operator's new mirror builds anew)."""
    text = json.dumps([sha256, backend, list(channels)])
    return hashlib.sha256(f"conda\0{text}".encode()).hexdigest()


def create_command(
    program: str | None,
    prefix: Path,
    channels: tuple[str, ...],
    specs: tuple[str, ...],
    *,
    cache_dir: Path,
) -> list[str]:
    """The command creating ``prefix`` with ``specs`` from ``channels`` (none: the program's own
    defaults): ``micromamba|mamba|conda create -y -p PREFIX``, else py-rattler's child."""
    if program is None:
        argv = [sys.executable, "-m", "theodolite_worker.rattler_create"]
        argv += ["--prefix", str(prefix), "--cache-dir", str(cache_dir)]
        for channel in channels:
            argv += ["--channel", channel]
        return [*argv, "--", *specs]
    argv = [program, "create", "-y", "-p", str(prefix)]
    if channels:
        argv.append("--override-channels")
        for channel in channels:
            argv += ["-c", channel]
    return [*argv, *specs]
