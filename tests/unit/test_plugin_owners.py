"""A plugin name belongs to the group that first published it: another group's publish or yank
is refused (403) before anything is stored; an administrator may publish and yank any name; a
call without the api's headers is the system group's. The registry's publisher runs on a real
PostgreSQL; validation, the object store and the broker are fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from theodolite_registry import publishing
from theodolite_registry.deps import PrincipalDep
from theodolite_registry.publishing import (
    SYSTEM,
    NameOwned,
    Principal,
    Publisher,
    VersionConflict,
)
from theodolite_registry.repositories import plugins as repository
from theodolite_registry.settings import RegistrySettings
from theodolite_registry.validation import ValidatedPlugin

from tests.fixtures.database import sessions
from theodolite.db.identity_tables import SYSTEM_GROUP, SYSTEM_GROUP_ID, Group
from theodolite.db.registry_tables import PluginName, PluginVersion
from theodolite_api.auth.callers import Caller, Forbidden, Role, Scope
from theodolite_api.clients.registry import acting_for
from theodolite_api.routes.plugins import _check_publishes, _publishing_group

__all__ = ["sessions"]  # the fixture
GROUP_A, GROUP_B = uuid.uuid4(), uuid.uuid4()


class FakeStore:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.keys.append(key)


class FakeBroker:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def publish(self, exchange: str, routing_key: str, event: Any, **kwargs: Any) -> None:
        self.events.append(routing_key)


async def _validated(data: bytes, filename: str, **limits: Any) -> ValidatedPlugin:
    """Archives here are ``name==version`` plus anything: other bytes, same version."""
    name, _, rest = data.decode().partition("==")
    version = rest.split(" ")[0]
    return ValidatedPlugin(name, name, version, name, {}, wheel=data)


@dataclass
class Registry:
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    store: FakeStore
    broker: FakeBroker


@pytest.fixture
async def registry(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> Registry:
    monkeypatch.setattr(publishing, "validate_plugin", _validated)
    async with sessions() as session:
        session.add_all(
            [
                Group(id=SYSTEM_GROUP_ID, name=SYSTEM_GROUP),
                Group(id=GROUP_A, name="alpha"),
                Group(id=GROUP_B, name="beta"),
            ]
        )
        await session.commit()
    store, broker = FakeStore(), FakeBroker()
    publisher = Publisher(
        settings=RegistrySettings(), store=cast(Any, store), broker=cast(Any, broker)
    )
    return Registry(sessions, publisher, store, broker)


async def _publish(
    publisher: Publisher, session: AsyncSession, data: str, principal: Principal
) -> tuple[PluginVersion, bool]:
    return await publisher.publish(session, data.encode(), "p.tar.gz", "upload", principal)


async def test_a_name_is_its_first_publishers_and_others_store_nothing(
    registry: Registry,
) -> None:
    pub, store = registry.publisher, registry.store
    alpha, beta = Principal(GROUP_A), Principal(GROUP_B)
    async with registry.sessions() as session:
        row, created = await _publish(pub, session, "n==1.0", alpha)
        assert created and row.version == "1.0"
        owner = await repository.owner(session=session, name="n")
        assert owner is not None and owner.group_id == GROUP_A
        stored = list(store.keys)

        for data in ("n==2.0", "n==1.0"):  # a higher version, and the very same bytes
            with pytest.raises(NameOwned, match="plugin name 'n' belongs to group 'alpha'"):
                await _publish(pub, session, data, beta)
        with pytest.raises(NameOwned):  # a version of A's with other bytes: 403 before 409
            await _publish(pub, session, "n==1.0 other", beta)
        assert store.keys == stored
        assert [r.version for r in await repository.versions(session=session, name="n")] == ["1.0"]

        again, created = await _publish(pub, session, "n==1.0", alpha)  # idempotent
        assert (again.sha256, created) == (row.sha256, False)
        with pytest.raises(VersionConflict):
            await _publish(pub, session, "n==1.0 other", alpha)
        assert (await _publish(pub, session, "n==2.0", alpha))[1]
        assert registry.broker.events == ["plugin.published", "plugin.published"]


async def test_yanks_are_the_owners_and_administrators_may_do_both(
    registry: Registry,
) -> None:
    pub = registry.publisher
    async with registry.sessions() as session:
        row, _ = await _publish(pub, session, "n==1.0", Principal(GROUP_A))
        with pytest.raises(NameOwned):
            await pub.yank(session, row, Principal(GROUP_B))
        await session.refresh(row)
        assert row.status == "published"

        administrator = Principal(GROUP_B, administrator=True)
        assert (await _publish(pub, session, "n==3.0", administrator))[1]
        assert (await pub.yank(session, row, administrator)).status == "yanked"
        owner = await repository.owner(session=session, name="n")
        assert owner is not None and owner.group_id == GROUP_A  # administrators take nothing


async def test_without_the_apis_headers_the_system_group_publishes(
    registry: Registry,
) -> None:
    pub = registry.publisher
    async with registry.sessions() as session:
        await pub.publish(session, b"data==0.1", "data.tar.gz", "upload")
        owners = list(await session.exec(select(PluginName)))
        assert [(o.name, o.group_id) for o in owners] == [("data", SYSTEM_GROUP_ID)]
        with pytest.raises(NameOwned, match="belongs to group 'system'"):
            await _publish(pub, session, "data==0.2", Principal(GROUP_A))


async def test_the_registry_reads_the_principal_the_api_sends() -> None:
    app = FastAPI()

    @app.get("/")
    def principal(found: PrincipalDep) -> dict[str, Any]:
        return {"group": str(found.group_id), "administrator": found.administrator}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        plain = (await client.get("/")).json()
        assert plain == {"group": str(SYSTEM.group_id), "administrator": False}
        alpha = (await client.get("/", headers=acting_for(GROUP_A))).json()
        assert alpha == {"group": str(GROUP_A), "administrator": False}
        headers = acting_for(GROUP_B, administrator=True)
        assert (await client.get("/", headers=headers)).json()["administrator"] is True


def _caller(roles: dict[uuid.UUID, Role], is_admin: bool = False) -> Caller:
    return Caller(
        user_id=uuid.uuid4(),
        name="u",
        is_admin=is_admin,
        roles=roles,
        scopes=frozenset({Scope.PUBLISH_PLUGINS, Scope.READ}),
        group_names={g: f"g{i}" for i, g in enumerate(roles)},
    )


async def test_the_api_checks_the_callers_role_in_the_owning_group() -> None:
    member = _caller({GROUP_A: Role.MEMBER, GROUP_B: Role.VIEWER})
    _check_publishes(member, GROUP_A, "plugin name 'n'")
    with pytest.raises(Forbidden, match="role in group 'g1' is viewer"):
        _check_publishes(member, GROUP_B, "plugin name 'n'")
    with pytest.raises(Forbidden, match="plugin name 'n' belongs to group 'other'"):
        _check_publishes(member, uuid.uuid4(), "plugin name 'n'", "other")
    _check_publishes(_caller({}, is_admin=True), uuid.uuid4(), "plugin name 'n'")

    # No group named: the caller's only writable group; an administrator in none: the system's.
    session = cast(AsyncSession, None)
    assert await _publishing_group(session, member, None) == GROUP_A
    assert await _publishing_group(session, _caller({}, is_admin=True), None) == SYSTEM_GROUP_ID
