"""Archive checks that tar and zip share: links, non-regular members, member counts."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.problems import ProblemsError

LIMITS = ArchiveLimits()
PROJECT = b"name: x\nentry_points:\n  main:\n    command: 'true'\n"


def _zip_with_link(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MLproject", PROJECT)
        link = zipfile.ZipInfo(name)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, target)
    return buffer.getvalue()


def _tar_with_device() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        project = tarfile.TarInfo("MLproject")
        project.size = len(PROJECT)
        archive.addfile(project, io.BytesIO(PROJECT))
        device = tarfile.TarInfo("dev/null")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
    return buffer.getvalue()


def _problems(data: bytes, limits: ArchiveLimits = LIMITS) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        inspect_archive(data, limits)
    return [problem.message for problem in raised.value.problems]


def test_a_zip_link_out_of_the_archive_is_refused() -> None:
    assert _problems(_zip_with_link("l", "../../etc/passwd")) == [
        "link 'l' points outside the archive ('../../etc/passwd')"
    ]


def test_a_zip_link_inside_the_archive_is_checked_but_never_extracted(tmp_path: Path) -> None:
    data = _zip_with_link("docs/project", "../MLproject")
    assert set(inspect_archive(data, LIMITS).files) == {"MLproject"}
    extract_archive(data, tmp_path, LIMITS)
    assert [path.name for path in tmp_path.rglob("*")] == ["MLproject"]


def test_a_zip_link_target_is_read_bounded() -> None:
    # A link's content is its target: a huge one (a compression bomb) is not read whole.
    (message,) = _problems(_zip_with_link("l", "../" * 2**20))
    assert len(message) < 5000


def test_a_device_in_a_tar_is_refused() -> None:
    assert _problems(_tar_with_device()) == ["member 'dev/null' is not a regular file"]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_too_many_members_are_refused_in_either_format(fmt: str) -> None:
    files = {f"f{i}.txt": b"x" for i in range(4)}
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in files.items():
                archive.writestr(name, content)
    else:
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    with pytest.raises(ProblemsError) as raised:
        inspect_archive(buffer.getvalue(), ArchiveLimits(max_members=3))
    assert raised.value.problems[0].message == "archive has more than 3 members; the limit is 3"
