"""Entry point and plugin archives (tar, tar.gz, zip): inspection and safe extraction.

Every member is checked before anything is written: no absolute paths, no ``..``, no links that
leave the archive, no devices, and bounded member count and unpacked size (which also stops
compression bombs, since decompression itself is bounded).
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from theodolite.problems import Problem, ProblemsError


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 50 * 2**20
    max_members: int = 2000
    max_unpacked_bytes: int = 200 * 2**20


@dataclass
class ArchiveContents:
    """A checked archive: its format, its regular files, and their bytes on request."""

    format: str
    files: dict[str, int] = field(default_factory=dict)  # normalised name -> size
    _tar_bytes: bytes | None = None
    _zip_bytes: bytes | None = None
    _names: dict[str, str] = field(default_factory=dict)  # normalised -> name in archive

    def read(self, name: str) -> bytes:
        original = self._names[name]
        if self._zip_bytes is not None:
            with zipfile.ZipFile(io.BytesIO(self._zip_bytes)) as archive:
                return archive.read(original)
        assert self._tar_bytes is not None
        with tarfile.open(fileobj=io.BytesIO(self._tar_bytes), mode="r:") as archive:
            member = archive.extractfile(original)
            if member is None:
                raise KeyError(name)
            return member.read()

    def iter_files(self) -> Iterator[tuple[str, bytes]]:
        """Every regular file with its bytes, reading the archive once."""
        wanted = {original: name for name, original in self._names.items()}
        if self._zip_bytes is not None:
            with zipfile.ZipFile(io.BytesIO(self._zip_bytes)) as archive:
                for original, name in wanted.items():
                    yield name, archive.read(original)
            return
        assert self._tar_bytes is not None
        with tarfile.open(fileobj=io.BytesIO(self._tar_bytes), mode="r:") as archive:
            for member in archive:
                if member.name in wanted and (handle := archive.extractfile(member)) is not None:
                    yield wanted[member.name], handle.read()


def _error(message: str) -> ProblemsError:
    return ProblemsError("invalid archive", [Problem(field="archive", message=message)])


def _normalise(name: str) -> str:
    return str(PurePosixPath(name.replace("\\", "/"))).removeprefix("./").rstrip("/")


def _path_problem(name: str) -> str | None:
    if name.startswith("/") or name.replace("\\", "/").startswith("/") or ":" in name.split("/")[0]:
        return f"member {name!r} has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return f"member {name!r} escapes the archive folder ('..')"
    return None


def _link_escapes(member_name: str, target: str, *, hard: bool) -> bool:
    if target.startswith("/"):
        return True
    base = PurePosixPath() if hard else PurePosixPath(member_name).parent
    depth = 0
    for part in (base / target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in {"", "."}:
            depth += 1
    return False


def _gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip without ever holding more than ``limit`` bytes (tar headers included)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(data, limit + 1)
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _error(f"archive unpacks to more than the limit of {limit} bytes")
    return out


def inspect_archive(data: bytes, limits: ArchiveLimits) -> ArchiveContents:
    """Check an archive completely; raise ProblemsError naming every unsafe member."""
    if len(data) > limits.max_bytes:
        raise _error(f"archive is {len(data)} bytes; the limit is {limits.max_bytes}")
    if zipfile.is_zipfile(io.BytesIO(data)):
        return _inspect_zip(data, limits)
    tar_bytes = data
    if data[:2] == b"\x1f\x8b":
        try:
            # Tar headers and padding take room too: allow for them above the content limit.
            tar_bytes = _gunzip_bounded(
                data, limits.max_unpacked_bytes + 1024 * (limits.max_members + 2)
            )
        except zlib.error as exc:
            raise _error(f"not a readable gzip file: {exc}") from exc
    try:
        return _inspect_tar(tar_bytes, limits)
    except tarfile.TarError as exc:
        raise _error("not a tar.gz, tar or zip archive") from exc


def _inspect_tar(tar_bytes: bytes, limits: ArchiveLimits) -> ArchiveContents:
    problems: list[Problem] = []
    contents = ArchiveContents(format="tar", _tar_bytes=tar_bytes)
    total = 0
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        members = archive.getmembers()
    if not members:
        raise _error("archive is empty")
    if len(members) > limits.max_members:
        raise _error(f"archive has {len(members)} members; the limit is {limits.max_members}")
    for member in members:
        if (problem := _path_problem(member.name)) is not None:
            problems.append(Problem(field="archive", message=problem))
            continue
        if member.issym() or member.islnk():
            if _link_escapes(member.name, member.linkname, hard=member.islnk()):
                problems.append(
                    Problem(
                        field="archive",
                        message=f"link {member.name!r} points outside the archive "
                        f"({member.linkname!r})",
                    )
                )
            continue
        if member.isdir():
            continue
        if not member.isreg():
            problems.append(
                Problem(field="archive", message=f"member {member.name!r} is not a regular file")
            )
            continue
        total += member.size
        name = _normalise(member.name)
        contents.files[name] = member.size
        contents._names[name] = member.name
    if total > limits.max_unpacked_bytes:
        problems.append(
            Problem(
                field="archive",
                message=f"archive unpacks to {total} bytes; the limit is "
                f"{limits.max_unpacked_bytes}",
            )
        )
    if problems:
        raise ProblemsError("invalid archive", problems)
    return contents


def _inspect_zip(data: bytes, limits: ArchiveLimits) -> ArchiveContents:
    problems: list[Problem] = []
    contents = ArchiveContents(format="zip", _zip_bytes=data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _error(f"not a readable zip file: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if not infos:
            raise _error("archive is empty")
        if len(infos) > limits.max_members:
            raise _error(f"archive has {len(infos)} members; the limit is {limits.max_members}")
        total = 0
        for info in infos:
            if (problem := _path_problem(info.filename)) is not None:
                problems.append(Problem(field="archive", message=problem))
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = archive.read(info).decode(errors="replace")
                if _link_escapes(info.filename, target, hard=False):
                    problems.append(
                        Problem(
                            field="archive",
                            message=f"link {info.filename!r} points outside the archive "
                            f"({target!r})",
                        )
                    )
                continue
            if info.is_dir():
                continue
            total += info.file_size
            name = _normalise(info.filename)
            contents.files[name] = info.file_size
            contents._names[name] = info.filename
    if total > limits.max_unpacked_bytes:
        problems.append(
            Problem(
                field="archive",
                message=f"archive unpacks to {total} bytes; the limit is "
                f"{limits.max_unpacked_bytes}",
            )
        )
    if problems:
        raise ProblemsError("invalid archive", problems)
    return contents


def extract_archive(data: bytes, destination: Path, limits: ArchiveLimits) -> None:
    """Check, then unpack regular files and folders into ``destination`` (links are skipped)."""
    contents = inspect_archive(data, limits)
    root = destination.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name, payload in contents.iter_files():
        target = (root / name).resolve()
        if not target.is_relative_to(root):  # defence in depth; inspect_archive refused these
            raise _error(f"member {name!r} escapes the archive folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        if name.endswith(".sh"):
            target.chmod(0o755)
