"""Hostile archives and MLproject commands are refused by name before anything is stored or run:
unsafe placeholders, duplicate names, links, members neither file nor folder, archives past
their limits (found as they stream)."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.archives import mlproject_problems
from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.mlproject import (
    EntryPointSpec,
    ParameterSpec,
    parse_mlproject,
    render_command,
)
from theodolite.problems import ProblemsError

# --- 6. MLproject command placeholders --------------------------------------------------------

_DECLARED = "    parameters:\n      p: {type: string, default: x}\n"


def _command(command: str) -> str:
    return f"entry_points:\n  main:\n{_DECLARED}    command: {json.dumps(command)}\n"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("echo {p!r}", "conversions and format specs"),
        ("echo {p!s}", "conversions and format specs"),
        ("echo {p:>10}", "conversions and format specs"),
        ("echo '{p}'", "inside single quotes"),
        ('echo "{p}"', "inside double quotes"),
        ('echo "a $x {p} b"', "inside double quotes"),
        ("echo `{p}`", "inside backticks"),
        ("echo \\{p}", "after a backslash"),
        ("echo ${p}", "after $"),
        ("echo {p.__class__}", "not a parameter"),
        ("echo {p[0]}", "not a parameter"),
        ("echo {}", "not a parameter"),
        ("echo {0}", "not a parameter"),
        ("echo {q}", "not a parameter"),
        ("echo {p", "unbalanced braces"),
    ],
)
def test_unsafe_placeholders_are_refused_at_upload(command: str, says: str) -> None:
    (problem,) = mlproject_problems(_command(command))
    assert problem.startswith("MLproject.entry_points.main.command: ")
    assert says in problem


@pytest.mark.parametrize(
    "command",
    [
        "python run.py --p {p} --q {p}",
        "echo '{{literal}}' {p}",  # escaped braces are text, in quotes or not
        "echo 'it''s' {p} \"done\"",
        "echo \\'{p}",  # the backslash escapes the quote before it, not the value
        "sh -c 'echo a' && echo {p}",
    ],
)
def test_plain_placeholders_outside_quotes_are_accepted(command: str) -> None:
    parse_mlproject(_command(command))


@pytest.mark.parametrize("name", ["a.b", "a[0]", "a b", "a:b", "a!r", "{a}", "1st"])
def test_parameter_names_are_plain_placeholders(name: str) -> None:
    text = (
        f"entry_points:\n  main:\n    parameters:\n      {json.dumps(name)}: string\n"
        "    command: 'true'\n"
    )
    assert any("parameter name" in p for p in mlproject_problems(text))


@pytest.mark.parametrize(
    "value", ["$(id)", "`id`", "'; id; '", '"; id; "', "a'b\"c", "x\ny", "{p}", "\\"]
)
def test_each_value_is_quoted_exactly_once(value: str, tmp_path: Path) -> None:
    spec = parse_mlproject(_command("printf %s {p} {p}")).entry_points["main"]
    command = render_command(spec, {"p": value}, tmp_path)
    assert command == f"printf %s {shlex.quote(value)} {shlex.quote(value)}"
    assert shlex.split(command) == ["printf", "%s", value, value]


def test_a_stored_command_with_a_conversion_is_not_rendered(tmp_path: Path) -> None:
    # An archive stored before these checks: the worker refuses rather than runs it.
    spec = EntryPointSpec(command="echo {p!r}", parameters={"p": ParameterSpec()})
    with pytest.raises(ProblemsError, match="conversions"):
        render_command(spec, {"p": "$(id)"}, tmp_path)


# --- 7. archives ------------------------------------------------------------------------------

ARCHIVE_LIMITS = ArchiveLimits(max_bytes=100_000, max_members=10, max_unpacked_bytes=50_000)
_MLPROJECT = b"entry_points:\n  main:\n    command: 'true'\n"


def tar_of(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    """A tar.gz of exactly these members, duplicates and links included (the integration
    tests use it too)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def link_member(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _archive_problems(data: bytes, limits: ArchiveLimits = ARCHIVE_LIMITS) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        inspect_archive(data, limits)
    return [p.message for p in raised.value.problems]


def test_duplicate_member_names_are_refused_in_tar() -> None:
    data = tar_of(("MLproject", _MLPROJECT), ("run.py", b"1"), ("./run.py", b"2"))
    assert _archive_problems(data) == ["member './run.py' appears more than once"]


def test_duplicate_member_names_are_refused_in_zip() -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("MLproject", _MLPROJECT)
            archive.writestr("run.py", "1")
            archive.writestr("run.py", "2")
    assert _archive_problems(buffer.getvalue()) == ["member 'run.py' appears more than once"]


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_link_sharing_a_members_name_is_refused(kind: bytes) -> None:
    # The amplifier: one big file and links of the same name, each read as the big file.
    big = ("data.bin", bytes(40_000))
    data = tar_of(("MLproject", _MLPROJECT), big, link_member("MLproject", "data.bin", kind))
    assert any("'MLproject'" in p for p in _archive_problems(data))


def test_hard_links_are_refused_even_inside_the_archive() -> None:
    data = tar_of(("MLproject", _MLPROJECT), link_member("copy", "MLproject", tarfile.LNKTYPE))
    assert _archive_problems(data) == ["member 'copy' is a hard link; hard links are not allowed"]


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_members_neither_file_nor_folder_are_refused(kind: bytes) -> None:
    odd = tarfile.TarInfo("odd")
    odd.type = kind
    assert _archive_problems(tar_of(("MLproject", _MLPROJECT), odd)) == [
        "member 'odd' is not a regular file"
    ]


def test_a_folder_listed_twice_is_harmless() -> None:
    folder = tarfile.TarInfo("src")
    folder.type = tarfile.DIRTYPE
    contents = inspect_archive(tar_of(("MLproject", _MLPROJECT), folder, folder), ARCHIVE_LIMITS)
    assert set(contents.files) == {"MLproject"}


def test_inspection_stops_at_the_member_limit_as_it_streams() -> None:
    members = [(f"f{i}", b"x") for i in range(50_000)]
    data = tar_of(*members)
    read: list[str] = []
    original = tarfile.TarFile.next

    def counting(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        member = original(self)
        if member is not None:
            read.append(member.name)
        return member

    limits = ArchiveLimits(max_bytes=10**8, max_members=10, max_unpacked_bytes=10**8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tarfile.TarFile, "next", counting)
        assert _archive_problems(data, limits) == [
            "archive has more than 10 members; the limit is 10"
        ]
    assert len(set(read)) == 11  # tarfile.open reads the first header twice


def test_inspection_stops_at_the_size_limit_as_it_streams() -> None:
    members = [(f"f{i}", bytes(1000)) for i in range(100)]
    limits = ArchiveLimits(max_bytes=10**8, max_members=1000, max_unpacked_bytes=5_500)
    (message,) = _archive_problems(tar_of(*members), limits)
    assert message == "archive unpacks to more than 5500 bytes; the limit is 5500"


def test_extraction_writes_each_file_once_with_its_own_bytes(tmp_path: Path) -> None:
    data = tar_of(("MLproject", _MLPROJECT), ("a/run.py", b"print(1)"))
    extract_archive(data, tmp_path, ARCHIVE_LIMITS)
    assert (tmp_path / "a" / "run.py").read_bytes() == b"print(1)"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["MLproject", "run.py"]
