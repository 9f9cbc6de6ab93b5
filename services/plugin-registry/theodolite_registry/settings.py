"""The registry's settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from theodolite.settings import ArchiveLimitSettings, CommonSettings, DatabaseSettings


class RegistrySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_REGISTRY_")

    host: str = Field("127.0.0.1", description="Address the registry binds.")
    port: int = Field(8100, description="Port the registry binds.")
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    archive_limits: ArchiveLimitSettings = Field(default_factory=ArchiveLimitSettings)
    migrate_on_start: bool = Field(True, description="Apply database migrations at start-up.")
    validation_timeout_s: float = Field(
        120.0, description="Longest a plugin's validation (build, import) may take."
    )
    validation_memory_mb: int = Field(
        4096, description="Address-space limit of the validation subprocess, in MiB."
    )
    validation_accept_weak_isolation: bool = Field(
        False,
        description="Validate plugins even where the host cannot sandbox the validation "
        "(no bubblewrap, no namespaces): then only an empty environment, rlimits and a "
        "session of its own contain it, as the registry's own uid. Off: such a host refuses "
        "to validate (503) and says why in its log and /readyz.",
    )
    validation_uid_base: int = Field(
        200_000,
        gt=0,
        description="Validations run as uids base .. base+999, one per running validation, "
        "never the registry's; keep it clear of the workers' THEODOLITE_WORKER_SANDBOX_UID_BASE "
        "range (100000 + slot) and of other registry replicas on the same host.",
    )
    reconcile_interval_s: float = Field(
        2.0, description="How often the plugin bucket is listed for archives put there directly."
    )
