import hashlib
import io
import os
import tarfile
from collections.abc import Callable

import httpx
import pytest

from tests.fixtures.archives import make_tar, make_tar_with_link, make_zip
from tests.fixtures.stack import Stack
from tests.integration.helpers import upload, upload_ok

GOOD_MLPROJECT = "name: ok\nentry_points:\n  main:\n    command: 'true'\n"


def test_upload_describes_entry_points_and_parameters(
    api: httpx.Client, example_archive: Callable[[str], bytes]
) -> None:
    data = example_archive("hello")
    stored = upload_ok(api, data)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["project_name"] == "hello"
    (main,) = stored["entry_points"]
    assert main["name"] == "main"
    params = {p["name"]: p for p in main["parameters"]}
    assert params["count"] == {"name": "count", "type": "int", "default": "3", "required": False}
    assert params["scale"]["type"] == "float"
    assert api.get(f"/entrypoints/{stored['id']}").json() == stored


def test_same_bytes_give_the_same_entry_point(
    api: httpx.Client, example_archive: Callable[[str], bytes]
) -> None:
    data = example_archive("digits-evasion")
    first = upload(api, data)
    second = upload(api, data)
    assert first.status_code in (200, 201)
    assert second.status_code == 200
    assert first.json()["id"] == second.json()["id"]


def test_archive_download_returns_the_uploaded_bytes(api: httpx.Client) -> None:
    data = make_zip({"MLproject": GOOD_MLPROJECT, "notes.txt": os.urandom(64).hex()})
    stored = upload_ok(api, data)
    assert stored["archive_format"] == "zip"
    response = api.get(f"/entrypoints/{stored['id']}/archive")
    assert response.status_code == 200
    assert response.content == data


def test_listing_counts_all_entry_points(api: httpx.Client) -> None:
    for _ in range(2):
        upload_ok(api, make_tar({"MLproject": GOOD_MLPROJECT, "salt": os.urandom(16)}))
    page = api.get("/entrypoints", params={"limit": 1}).json()
    assert len(page["data"]) == 1
    assert page["count"] >= 2


def _gzip_of_zeros_tar(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = GOOD_MLPROJECT.encode()
        info = tarfile.TarInfo("MLproject")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        big = tarfile.TarInfo("zeros.bin")
        big.size = size
        archive.addfile(big, io.BytesIO(bytes(size)))
    return buffer.getvalue()


BAD_ARCHIVES = {
    "not an archive": (b"just some text, not a tarball", 422, "not a tar.gz, tar or zip"),
    "no MLproject and nothing to run": (
        make_tar({"README.md": "hello"}),
        422,
        "no MLproject entry point",
    ),
    "MLproject in a subfolder only": (
        make_tar({"project/MLproject": GOOD_MLPROJECT}),
        422,
        "no MLproject entry point",
    ),
    "MLproject not YAML": (make_tar({"MLproject": "name: [unclosed"}), 422, "not YAML"),
    "MLproject without entry points or files": (
        make_tar({"MLproject": "name: x\n"}),
        422,
        "no MLproject entry point",
    ),
    "boolean default of a float": (
        make_tar(
            {
                "MLproject": "entry_points:\n  main:\n    parameters:\n"
                "      a: {type: float, default: false}\n    command: 'echo {a}'\n"
            }
        ),
        422,
        "expected float, got bool",
    ),
    "dot-dot member": (
        make_tar({"MLproject": GOOD_MLPROJECT, "../evil.py": "x"}),
        422,
        "escapes the archive",
    ),
    "absolute member": (
        make_tar({"MLproject": GOOD_MLPROJECT, "/etc/evil": "x"}),
        422,
        "absolute path",
    ),
    "zip dot-dot member": (
        make_zip({"MLproject": GOOD_MLPROJECT, "a/../../evil.py": "x"}),
        422,
        "escapes the archive",
    ),
    "symlink outside": (make_tar_with_link("link", "../../etc/passwd"), 422, "points outside"),
    "absolute symlink": (make_tar_with_link("link", "/etc/passwd"), 422, "points outside"),
    "too many files": (
        make_tar({"MLproject": GOOD_MLPROJECT, **{f"f{i}.txt": "x" for i in range(60)}}),
        422,
        "members; the limit is 50",
    ),
    "unpacks too big": (_gzip_of_zeros_tar(2 * 1024 * 1024), 422, "unpacks to more than the limit"),
    "upload too big": (os.urandom(300 * 1024), 413, "larger than the limit"),
}


def _stored_keys(stack: Stack) -> set[str]:
    return set(stack.object_store().list_keys(stack.config.entrypoint_bucket))


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archive_is_refused_and_leaves_nothing(
    api: httpx.Client, stack: Stack, case: str
) -> None:
    data, status, expected = BAD_ARCHIVES[case]
    count_before = api.get("/entrypoints").json()["count"]
    keys_before = _stored_keys(stack)

    response = upload(api, data)

    assert response.status_code == status, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert expected in body["detail"] or any(
        expected in p["message"] for p in body.get("problems", [])
    )
    assert api.get("/entrypoints").json()["count"] == count_before
    assert _stored_keys(stack) == keys_before


def test_every_unsafe_member_is_named(api: httpx.Client) -> None:
    data = make_tar({"MLproject": GOOD_MLPROJECT, "../a.py": "x", "/b.py": "y", "ok.py": "z"})
    response = upload(api, data)
    assert response.status_code == 422
    messages = " ".join(p["message"] for p in response.json()["problems"])
    assert "'../a.py'" in messages and "'/b.py'" in messages
