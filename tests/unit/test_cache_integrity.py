"""The worker's archive and plugin caches cannot be poisoned: an entry changed on disk is found
when used, logged, removed and fetched again; entries are read-only; writers racing for one
entry (two replicas sharing a volume) leave one valid entry and no temporary files."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.fixtures.plugins import make_wheel
from theodolite.storage import IntegrityError, ObjectStore, entrypoint_archive_key
from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.plugin_cache import PluginCache

BUCKET = "cache-test"


class BytesStore:
    """The object store's reading side over a dict; ``barrier``, when set, holds every reader
    after its first chunk so that writers overlap."""

    def __init__(self, objects: dict[str, bytes], barrier: threading.Barrier | None = None) -> None:
        self.objects = objects
        self.barrier = barrier
        self.reads = 0

    def iter_chunks(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        assert bucket == BUCKET
        self.reads += 1
        data = self.objects[key]
        yield data[:10]
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        yield data[10:]


def archive_cache(store: BytesStore, directory: Path) -> ArchiveCache:
    return ArchiveCache(store=cast(ObjectStore, store), bucket=BUCKET, directory=directory)


def plugin_cache(store: BytesStore, directory: Path) -> PluginCache:
    return PluginCache(store=cast(ObjectStore, store), bucket=BUCKET, directory=directory)


def archive_store(data: bytes) -> tuple[BytesStore, str]:
    sha256 = hashlib.sha256(data).hexdigest()
    return BytesStore({entrypoint_archive_key(sha256): data}), sha256


def overwrite(path: Path, data: bytes) -> None:
    """What a writer that got past the permissions would do."""
    os.chmod(path, 0o644)
    path.write_bytes(data)


def test_a_tampered_archive_entry_is_found_logged_and_fetched_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"MLproject archive bytes " * 100
    store, sha256 = archive_store(data)
    cache = archive_cache(store, tmp_path)
    assert asyncio.run(cache.get(sha256)) == data
    entry = tmp_path / sha256
    assert stat.S_IMODE(entry.stat().st_mode) == 0o444

    overwrite(entry, b"import os; os.system('steal')")
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(cache.get(sha256)) == data
    assert entry.read_bytes() == data and store.reads == 2
    assert f"archive cache entry {entry}" in caplog.text and "fetching it again" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [sha256]


def test_wrong_bytes_from_the_store_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    store, sha256 = archive_store(b"the real archive")
    store.objects[entrypoint_archive_key(sha256)] = b"something else"
    with pytest.raises(IntegrityError):
        asyncio.run(archive_cache(store, tmp_path).get(sha256))
    assert list(tmp_path.iterdir()) == []


def plugin_store(name: str = "poisoned") -> tuple[BytesStore, str, str]:
    wheel = make_wheel(name, "1.0.0", number=7)
    sha256 = hashlib.sha256(wheel).hexdigest()
    key = f"wheels/{sha256}/{name}.whl"
    return BytesStore({key: wheel}), key, sha256


def test_plugin_entries_are_read_only(tmp_path: Path) -> None:
    store, key, sha256 = plugin_store()
    folder = asyncio.run(plugin_cache(store, tmp_path).ensure(key, sha256))
    module = folder / "poisoned_plugin" / "tasks.py"
    assert "VERSION_NUMBER = 7" in module.read_text()
    assert stat.S_IMODE(module.stat().st_mode) == 0o444
    assert stat.S_IMODE(module.parent.stat().st_mode) == 0o555
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    assert stat.S_IMODE((tmp_path / f"{sha256}.whl").stat().st_mode) == 0o444


# A changed wheel beside an unchanged folder matters only at the next full check (a restart):
# jobs import the folder, which this worker checked already.
TAMPERING = [
    ("changed module", False),
    ("changed module", True),
    ("added module", False),
    ("added module", True),
    ("changed wheel", True),
]


@pytest.mark.parametrize(("tampering", "fresh_process"), TAMPERING)
def test_a_tampered_plugin_entry_is_found_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tampering: str, fresh_process: bool
) -> None:
    store, key, sha256 = plugin_store()
    cache = plugin_cache(store, tmp_path)
    folder = asyncio.run(cache.ensure(key, sha256))
    module = folder / "poisoned_plugin" / "tasks.py"
    original = module.read_bytes()
    os.chmod(module.parent, 0o755)
    if tampering == "changed module":
        overwrite(module, b"import os\nos.system('steal the next job')\n")
    elif tampering == "added module":
        (module.parent / "sitecustomize.py").write_text("print('injected')\n")
    else:
        overwrite(tmp_path / f"{sha256}.whl", b"not the wheel")
    if fresh_process:
        cache = plugin_cache(store, tmp_path)

    with caplog.at_level(logging.WARNING):
        again = asyncio.run(cache.ensure(key, sha256))
    assert again == folder
    assert module.read_bytes() == original
    assert sorted(p.name for p in module.parent.iterdir()) == ["__init__.py", "tasks.py"]
    assert "removed" in caplog.text, "the replacement is logged"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sha256, f"{sha256}.whl"])


def test_an_untouched_plugin_entry_is_not_fetched_again(tmp_path: Path) -> None:
    store, key, sha256 = plugin_store()
    asyncio.run(plugin_cache(store, tmp_path).ensure(key, sha256))
    restarted = plugin_cache(store, tmp_path)
    for _ in range(3):
        asyncio.run(restarted.ensure(key, sha256))
    assert store.reads == 1


WRITERS = 4


def race(write: object) -> list[BaseException]:
    """Run ``write`` in WRITERS threads at once; the errors they raised."""
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            write()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def test_concurrent_archive_writers_leave_one_valid_file_and_no_temporaries(
    tmp_path: Path,
) -> None:
    data = os.urandom(200_000)
    store, sha256 = archive_store(data)
    store.barrier = threading.Barrier(WRITERS)  # every writer is mid-write before any finishes
    results: list[bytes] = []

    def replica() -> None:  # a cache of its own, as each worker replica has
        results.append(asyncio.run(archive_cache(store, tmp_path).get(sha256)))

    assert race(replica) == []
    assert results == [data] * WRITERS and store.reads == WRITERS
    assert [p.name for p in tmp_path.iterdir()] == [sha256]
    assert (tmp_path / sha256).read_bytes() == data


def test_concurrent_plugin_writers_leave_one_valid_entry_and_no_temporaries(
    tmp_path: Path,
) -> None:
    store, key, sha256 = plugin_store("raced")
    store.barrier = threading.Barrier(WRITERS)
    folders: list[Path] = []

    def replica() -> None:
        folders.append(asyncio.run(plugin_cache(store, tmp_path).ensure(key, sha256)))

    assert race(replica) == []
    assert folders == [tmp_path / sha256] * WRITERS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sha256, f"{sha256}.whl"])
    module = tmp_path / sha256 / "raced_plugin" / "tasks.py"
    assert "VERSION_NUMBER = 7" in module.read_text()
