import io
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.archives import make_tar, make_tar_with_link, make_zip
from theodolite.archives import ArchiveLimits, extract_archive, inspect_archive
from theodolite.problems import ProblemsError

LIMITS = ArchiveLimits(max_bytes=100_000, max_members=10, max_unpacked_bytes=50_000)


def test_tar_gz_tar_and_zip_are_read_alike() -> None:
    files = {"MLproject": "x", "src/run.py": "print(1)", "./data/a.csv": "1,2"}
    for data in (make_tar(files), make_tar(files, gz=False), make_zip(files)):
        contents = inspect_archive(data, LIMITS)
        assert set(contents.files) == {"MLproject", "src/run.py", "data/a.csv"}
        assert contents.read("src/run.py") == b"print(1)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (make_tar({"../x": "1"}), "escapes"),
        (make_tar({"a/../../x": "1"}), "escapes"),
        (make_tar({"/abs": "1"}), "absolute"),
        (make_zip({"../x": "1"}), "escapes"),
        (make_tar_with_link("l", "../outside"), "points outside"),
        (make_tar_with_link("deep/l", "../../outside"), "points outside"),
        (make_tar_with_link("l", "/etc/passwd", hard=True), "points outside"),
        (make_tar({f"f{i}": "1" for i in range(11)}), "limit is 10"),
        (make_tar({"big": b"0" * 60_000}), "unpacks to"),
        (b"\x1f\x8b garbage", "gzip"),
        (b"hello", "not a tar.gz, tar or zip"),
    ],
)
def test_unsafe_archives_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProblemsError) as caught:
        inspect_archive(data, LIMITS)
    assert message in str(caught.value)


def test_links_inside_the_archive_are_allowed() -> None:
    inspect_archive(make_tar_with_link("a/link", "../MLproject"), LIMITS)


def test_a_compression_bomb_is_stopped_while_decompressing() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 10_000_000
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    data = buffer.getvalue()
    assert len(data) < LIMITS.max_bytes
    with pytest.raises(ProblemsError, match="more than the limit"):
        inspect_archive(data, LIMITS)


def test_extract_writes_only_inside_the_destination(tmp_path: Path) -> None:
    destination = tmp_path / "project"
    extract_archive(make_tar({"MLproject": "m", "pkg/mod.py": "x = 1"}), destination, LIMITS)
    assert (destination / "pkg" / "mod.py").read_text() == "x = 1"
    with pytest.raises(ProblemsError):
        extract_archive(make_tar({"../escaped": "x"}), tmp_path / "other", LIMITS)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "other").exists()
