"""The bucket reconciler on the periodic base class: new or changed archives are published,
invalid ones recorded as rejected and not tried again until their bytes change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from theodolite_registry.loops.bucket_reconciler import BucketReconciler
from theodolite_registry.publishing import ValidationFailed, VersionConflict

from tests.fixtures.registry import plugin_version
from tests.unit.waiting import eventually
from theodolite.db.registry_tables import PluginDrop, PluginVersion
from theodolite.periodic import PeriodicService


class FakeStore:
    def __init__(self, objects: dict[str, tuple[str, bytes]]) -> None:
        self.objects = objects  # key -> (etag, bytes)
        self.fail_listing = False

    def list_etags(self, bucket: str) -> dict[str, str]:
        if self.fail_listing:
            raise ConnectionError("the object store does not answer")
        return {key: etag for key, (etag, _) in self.objects.items()}

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self.objects[key][1]


class FakeSession:
    def __init__(self, drops: dict[str, PluginDrop]) -> None:
        self.drops = drops
        self.commits = 0

    async def get(self, model: type[Any], key: str) -> PluginDrop | None:
        assert model is PluginDrop
        return self.drops.get(key)

    async def merge(self, drop: PluginDrop) -> None:
        self.drops[drop.key] = drop

    async def commit(self) -> None:
        self.commits += 1


class FakeSessions:
    def __init__(self) -> None:
        self.drops: dict[str, PluginDrop] = {}

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeSession]:
        yield FakeSession(self.drops)


def _version(name: str, version: str) -> PluginVersion:
    return plugin_version(name, version, source="bucket")


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, str, str]] = []

    async def publish(
        self, session: FakeSession, data: bytes, filename: str, source: str
    ) -> tuple[PluginVersion, bool]:
        self.published.append((data, filename, source))
        if data == b"broken":
            raise ValidationFailed("import", "importing the plugin failed")
        if data == b"clash":
            raise VersionConflict("p==1.0 exists already with other bytes")
        return _version("p", data.decode()), True


def _reconciler(store: FakeStore, sessions: FakeSessions, publisher: FakePublisher) -> Any:
    return BucketReconciler(
        sessions=cast(Any, sessions),
        store=cast(Any, store),
        bucket="plugins",
        publisher=cast(Any, publisher),
        interval_s=3600,
    )


async def test_candidates_are_published_or_rejected_once_and_own_objects_skipped() -> None:
    store = FakeStore(
        {
            "good.whl": ("e1", b"1.0"),
            "bad.tar.gz": ("e2", b"broken"),
            "again.zip": ("e3", b"clash"),
            "archives/abc": ("e4", b"1.0"),  # the registry's own content-addressed copy
            "wheels/abc/p-1.0.whl": ("e5", b"1.0"),
            "notes.txt": ("e6", b"not a plugin"),
        }
    )
    sessions, publisher = FakeSessions(), FakePublisher()
    reconciler = _reconciler(store, sessions, publisher)

    assert await reconciler.reconcile_once() == 3
    assert sorted(source for _, _, source in publisher.published) == [
        "bucket:again.zip",
        "bucket:bad.tar.gz",
        "bucket:good.whl",
    ]
    good, bad, clash = (sessions.drops[k] for k in ("good.whl", "bad.tar.gz", "again.zip"))
    assert (good.status, good.name, good.version, good.reason) == ("published", "p", "1.0", None)
    assert (bad.status, bad.reason) == ("rejected", "importing the plugin failed")
    assert (clash.status, clash.reason) == ("rejected", "p==1.0 exists already with other bytes")

    assert await reconciler.reconcile_once() == 0  # same etags: nothing is tried again

    store.objects["bad.tar.gz"] = ("e7", b"2.0")  # new bytes under the same key
    assert await reconciler.reconcile_once() == 1
    assert sessions.drops["bad.tar.gz"].status == "published"


async def test_it_runs_as_a_periodic_service_and_survives_a_failed_listing() -> None:
    store = FakeStore({"good.whl": ("e1", b"1.0")})
    store.fail_listing = True
    sessions, publisher = FakeSessions(), FakePublisher()
    reconciler = _reconciler(store, sessions, publisher)
    assert isinstance(reconciler, PeriodicService)

    async with reconciler:
        await eventually(lambda: reconciler.rounds >= 1)
        assert reconciler.failed_rounds == 1 and not publisher.published
        store.fail_listing = False
        reconciler.wake()
        await eventually(lambda: "good.whl" in sessions.drops)
        assert sessions.drops["good.whl"].status == "published"
    assert not reconciler.running
