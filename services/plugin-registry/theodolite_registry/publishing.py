"""From archive bytes to a published plugin version: validate, check the name is the
publisher's, store immutably, record, and announce ``plugin.published``; or nothing at all."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.broker import Broker
from theodolite.db.identity_tables import SYSTEM_GROUP_ID
from theodolite.db.registry_tables import PluginName, PluginVersion
from theodolite.db.tables import utcnow
from theodolite.events import PluginPublished, PluginYanked, make_event
from theodolite.storage import ObjectStore
from theodolite.web.errors import Conflict, DomainError
from theodolite_registry.observability.metrics import PLUGIN_PUBLISHES
from theodolite_registry.repositories import plugins as repository
from theodolite_registry.sandboxing import ValidationSandbox
from theodolite_registry.settings import RegistrySettings
from theodolite_registry.validation import ValidationFailed, validate_plugin

log = logging.getLogger(__name__)
PRODUCER = "plugin-registry"


class VersionConflict(Conflict):
    """The same name and version exists with other bytes: versions are immutable."""


class NameOwned(DomainError, status_code=403, title="Forbidden"):
    """The plugin name belongs to another group: only it (or an administrator) publishes and
    yanks its versions."""


@dataclass(frozen=True)
class Principal:
    """On whose behalf a publish or a yank runs: a group, which owns the names it publishes
    first; an administrator may publish and yank versions of any name."""

    group_id: uuid.UUID
    administrator: bool = False


# Whoever reaches the registry without the api (the devstack's built-ins, the plugin bucket).
SYSTEM = Principal(SYSTEM_GROUP_ID)


async def check_owner(session: AsyncSession, name: str, principal: Principal) -> PluginName | None:
    """The name's owner row (None for a new name); NameOwned when another group owns it."""
    owned = await repository.owner(session=session, name=name)
    if owned is None or owned.group_id == principal.group_id or principal.administrator:
        return owned
    groups = await repository.group_names(session=session, ids={owned.group_id})
    group = groups.get(owned.group_id, str(owned.group_id))
    raise NameOwned(f"plugin name {name!r} belongs to group {group!r}")


class Publisher:
    def __init__(
        self,
        *,
        settings: RegistrySettings,
        store: ObjectStore,
        broker: Broker,
        sandbox: ValidationSandbox | None = None,
    ) -> None:
        self._settings = settings
        self.sandbox = sandbox or ValidationSandbox(
            accept_weak_isolation=settings.validation_accept_weak_isolation,
            uid_base=settings.validation_uid_base,
        )
        self._store = store
        self._broker = broker
        self._lock = asyncio.Lock()  # one publish at a time: name/version checks stay simple

    async def publish(
        self,
        session: AsyncSession,
        data: bytes,
        filename: str,
        source: str,
        principal: Principal = SYSTEM,
    ) -> tuple[PluginVersion, bool]:
        """The published version for these bytes and whether it is new; commits the new row
        (and, for a new name, the principal's group as its owner)."""
        outcome = "error"
        try:
            row, new = await self._publish(session, data, filename, source, principal)
            outcome = "published" if new else "existing"
            return row, new
        except ValidationFailed:
            outcome = "invalid"
            raise
        except VersionConflict:
            outcome = "conflict"
            raise
        except NameOwned:
            outcome = "forbidden"
            raise
        finally:
            # "upload" or "bucket" (a bucket source names its key: one series per key otherwise).
            PLUGIN_PUBLISHES.labels(source.partition(":")[0], outcome).inc()

    async def _publish(
        self,
        session: AsyncSession,
        data: bytes,
        filename: str,
        source: str,
        principal: Principal,
    ) -> tuple[PluginVersion, bool]:
        # Raises ValidationFailed, NameOwned or VersionConflict (domain errors: 422, 403, 409)
        # having stored nothing, so a caller maps them or, as the bucket reconciler does,
        # records the reason.
        sha256 = hashlib.sha256(data).hexdigest()
        existing = await repository.get_by_sha256(session=session, sha256=sha256)
        if existing is not None:
            await check_owner(session, existing.name, principal)
            return existing, False
        validated = await validate_plugin(
            data,
            filename,
            timeout_s=self._settings.validation_timeout_s,
            memory_mb=self._settings.validation_memory_mb,
            sandbox=self.sandbox,
        )
        async with self._lock:
            owned = await check_owner(session, validated.plugin, principal)
            same = await repository.get(
                session=session, name=validated.plugin, version=validated.version
            )
            if same is not None:
                raise VersionConflict(
                    f"{validated.plugin}=={validated.version} exists already with other bytes "
                    f"(sha256 {same.sha256[:12]}); publish a new version instead"
                )
            wheel_sha256 = hashlib.sha256(validated.wheel).hexdigest()
            bucket = self._settings.storage.plugin_bucket
            archive_key = f"archives/{sha256}"
            wheel_key = f"wheels/{wheel_sha256}/{validated.distribution}-{validated.version}.whl"
            await asyncio.to_thread(
                self._store.put_bytes, bucket, archive_key, data, "application/octet-stream"
            )
            await asyncio.to_thread(
                self._store.put_bytes, bucket, wheel_key, validated.wheel, "application/zip"
            )
            row = PluginVersion(
                name=validated.plugin,
                version=validated.version,
                sha256=sha256,
                archive_key=archive_key,
                wheel_key=wheel_key,
                wheel_sha256=wheel_sha256,
                module=validated.module,
                tasks=validated.tasks,
                source=source,
            )
            session.add(row)
            if owned is None:
                session.add(PluginName(name=row.name, group_id=principal.group_id))
            try:
                await session.commit()
            except IntegrityError as exc:
                # Another replica published this version or claimed this name meanwhile.
                await session.rollback()
                await check_owner(session, validated.plugin, principal)
                raise VersionConflict(f"{validated.plugin}=={validated.version} exists") from exc
        await self._announce(
            PluginPublished(
                name=row.name,
                version=row.version,
                sha256=row.sha256,
                wheel_key=row.wheel_key,
                wheel_sha256=row.wheel_sha256,
            )
        )
        log.info("published %s==%s (%s)", row.name, row.version, source)
        return row, True

    async def yank(
        self, session: AsyncSession, row: PluginVersion, principal: Principal = SYSTEM
    ) -> PluginVersion:
        """The version, yanked (announced once); NameOwned for another group's name."""
        await check_owner(session, row.name, principal)
        if row.status != "yanked":
            row.status = "yanked"
            row.yanked_at = utcnow()
            session.add(row)
            await session.commit()
            await self._announce(PluginYanked(name=row.name, version=row.version))
        return row

    async def _announce(self, payload: PluginPublished | PluginYanked) -> None:
        event = make_event(payload, producer=PRODUCER)
        try:
            await self._broker.publish(
                topology.CONTROL_EXCHANGE.name, event.type.value, event, mandatory=False
            )
        except Exception:  # the version is recorded: workers still fetch it when a job needs it
            log.warning("could not announce %s", event.type, exc_info=True)


__all__ = [
    "SYSTEM",
    "NameOwned",
    "Principal",
    "Publisher",
    "ValidationFailed",
    "VersionConflict",
    "check_owner",
]
