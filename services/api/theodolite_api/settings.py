"""The api's settings: the shared concerns plus the gateway's own knobs."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from theodolite.settings import ArchiveLimitSettings, CommonSettings, DatabaseSettings


class ApiSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_API_")

    host: str = Field("127.0.0.1", description="Address the api binds.")
    port: int = Field(8000, description="Port the api binds.")
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    archive_limits: ArchiveLimitSettings = Field(default_factory=ArchiveLimitSettings)
    migrate_on_start: bool = Field(
        True, description="Apply database migrations at start-up (one replica at a time)."
    )
    default_timeout_s: int | None = Field(
        None, description="Timeout given to jobs that name none (None: no timeout)."
    )
    max_timeout_s: int = Field(7 * 24 * 3600, description="Largest timeout_s a job may ask for.")
    worker_liveness_s: float = Field(
        15.0, description="A worker unheard of for this long no longer counts as live."
    )
    registry_url: str = Field(
        "http://127.0.0.1:8100", description="The plugin registry (served under /api/v1/plugins)."
    )
    callback_denied_networks: list[str] = Field(
        ["169.254.0.0/16", "0.0.0.0/32", "::/128"],
        description="Networks a callback URL may not point into (besides the testbed's own "
        "services, always refused), e.g. cloud metadata endpoints.",
    )
    log_tail_lines: int = Field(20, description="Log lines shown in a job's body.")
    outbox_poll_interval_s: float = Field(
        1.0, description="How often the relay looks for unpublished events it was not told of."
    )
