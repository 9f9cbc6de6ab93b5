"""Entry point and plugin archives (tar, tar.gz, zip): inspection and safe extraction.

Every member is checked before anything is written: no absolute paths, no ``..``, no links that
leave the archive, no hard links, no devices, no two members of one name, and bounded member
count and unpacked size, checked as the members stream by (which also stops compression bombs,
since decompression itself is bounded).
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
                # Regular members only: a link's name never brings its target's bytes.
                if member.isreg() and member.name in wanted:
                    name = wanted.pop(member.name)  # once: a second member of the name is not
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield name, handle.read()


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


@dataclass(frozen=True)
class _Member:
    """One member of a tar or zip archive: what the checks need of it."""

    name: str
    size: int = 0
    link: str | None = None  # the target, for a symbolic or hard link
    hard_link: bool = False
    directory: bool = False
    regular: bool = True


# A symbolic link's target, read from a zip member's content: longer than any path can be.
_LINK_TARGET_MAX = 4096


def _inspect_tar(tar_bytes: bytes, limits: ArchiveLimits) -> ArchiveContents:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        # Iterated, not getmembers(): the checks stop at a limit without reading further headers.
        found = (
            _Member(
                member.name,
                member.size,
                link=member.linkname if member.issym() or member.islnk() else None,
                hard_link=member.islnk(),
                directory=member.isdir(),
                regular=member.isreg(),
            )
            for member in archive
        )
        return _checked(ArchiveContents(format="tar", _tar_bytes=tar_bytes), found, limits)


def _inspect_zip(data: bytes, limits: ArchiveLimits) -> ArchiveContents:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _error(f"not a readable zip file: {exc}") from exc
    with archive:
        found = (_zip_member(archive, info) for info in archive.infolist())
        return _checked(ArchiveContents(format="zip", _zip_bytes=data), found, limits)


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    if stat.S_ISLNK(info.external_attr >> 16):
        # Read bounded: the content is the target, and a compressed one could be a bomb.
        with archive.open(info) as content:
            target = content.read(_LINK_TARGET_MAX).decode(errors="replace")
        return _Member(info.filename, link=target)
    return _Member(info.filename, info.file_size, directory=info.is_dir())


def _checked(
    contents: ArchiveContents, members: Iterator[_Member], limits: ArchiveLimits
) -> ArchiveContents:
    """Check every member as it comes, stopping at the first limit passed, and list the regular
    files in ``contents``."""
    problems: list[Problem] = []
    total = count = 0
    directories: set[str] = set()
    seen: set[str] = set()
    for member in members:
        count += 1
        if count > limits.max_members:
            raise _error(
                f"archive has more than {limits.max_members} members; the limit is "
                f"{limits.max_members}"
            )
        if (problem := _member_problem(member)) is not None:
            problems.append(Problem(field="archive", message=problem))
            continue
        name = _normalise(member.name)
        # One name, one member: a second one (a link or file of the same name) would replace
        # the first on extraction, or multiply its bytes.
        if name in seen and not (member.directory and name in directories):
            problems.append(
                Problem(field="archive", message=f"member {member.name!r} appears more than once")
            )
            continue
        seen.add(name)
        if member.directory:
            directories.add(name)
            continue  # folders come with their files
        if member.link is not None:
            continue  # links are checked, never extracted
        total += member.size
        if total > limits.max_unpacked_bytes:
            raise _error(
                f"archive unpacks to more than {limits.max_unpacked_bytes} bytes; the "
                f"limit is {limits.max_unpacked_bytes}"
            )
        contents.files[name] = member.size
        contents._names[name] = member.name
    if not count:
        raise _error("archive is empty")
    if problems:
        raise ProblemsError("invalid archive", problems)
    return contents


def _member_problem(member: _Member) -> str | None:
    if (problem := _path_problem(member.name)) is not None:
        return problem
    if member.link is not None:
        if _link_escapes(member.name, member.link, hard=member.hard_link):
            return f"link {member.name!r} points outside the archive ({member.link!r})"
        if member.hard_link:
            # Read as its target's bytes: one large file, linked many times, multiplies.
            return f"member {member.name!r} is a hard link; hard links are not allowed"
        return None
    if not member.directory and not member.regular:
        return f"member {member.name!r} is not a regular file"
    return None


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
