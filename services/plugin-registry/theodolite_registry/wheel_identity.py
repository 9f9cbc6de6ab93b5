"""A wheel's name, version and ``theodolite.plugins`` entry points, read from its own files
without running any of its code.

The sandbox reads them to know what to import; the registry reads them again from the wheel
the sandbox hands back, so that whatever the plugin's import did inside the sandbox, the
published name and version are those its wheel declares.
"""

from __future__ import annotations

import configparser
import zipfile
from dataclasses import dataclass
from email.parser import Parser

from theodolite.sdk.discovery import ENTRY_POINT_GROUP

# METADATA and entry_points.txt are small; a wheel whose are not is refused unread.
MAX_METADATA_BYTES = 1 << 20


class WheelProblem(ValueError):
    """The wheel does not say what it is."""


class _CaseKeepingParser(configparser.ConfigParser):
    """Keeps option names as written: entry point names are case-sensitive."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


@dataclass(frozen=True)
class WheelIdentity:
    distribution: str
    version: str
    entry_points: dict[str, str]


def _member(archive: zipfile.ZipFile, name: str) -> str | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_METADATA_BYTES:
        raise WheelProblem(f"{name} is larger than {MAX_METADATA_BYTES} bytes")
    return archive.read(info).decode("utf-8", errors="replace")


def wheel_identity(archive: zipfile.ZipFile) -> WheelIdentity:
    """The identity an open wheel declares; WheelProblem when it declares none."""
    dist_infos = {
        name.split("/", 1)[0]
        for name in archive.namelist()
        if name.split("/", 1)[0].endswith(".dist-info") and "/" in name
    }
    if len(dist_infos) != 1:
        raise WheelProblem("the wheel has no single .dist-info folder")
    (dist_info,) = dist_infos
    metadata = _member(archive, f"{dist_info}/METADATA")
    if metadata is None:
        raise WheelProblem("the wheel has no METADATA")
    meta = Parser().parsestr(metadata)
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise WheelProblem("METADATA names no Name and Version")
    entry_points: dict[str, str] = {}
    points = _member(archive, f"{dist_info}/entry_points.txt")
    if points is not None:
        parser = _CaseKeepingParser(delimiters=("=",), interpolation=None)
        try:
            parser.read_string(points)
        except configparser.Error as exc:
            raise WheelProblem(f"entry_points.txt does not parse: {exc}") from exc
        if parser.has_section(ENTRY_POINT_GROUP):
            entry_points = {k.strip(): v.strip() for k, v in parser.items(ENTRY_POINT_GROUP)}
    return WheelIdentity(str(name), str(version), entry_points)
