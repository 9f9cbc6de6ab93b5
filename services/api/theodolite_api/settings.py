"""The api's settings: the shared concerns plus the gateway's own knobs."""

from __future__ import annotations

from pydantic import Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from theodolite.settings import ArchiveLimitSettings, CommonSettings, DatabaseSettings
from theodolite_api.auth.settings import AuthSettings


class EventStreamSettings(BaseSettings):
    """Server-sent event streams of jobs and experiments."""

    model_config = SettingsConfigDict(env_prefix="THEODOLITE_EVENTS_")

    ping_s: float = Field(15.0, description="Keep-alive comment interval of an idle stream.")
    batch: int = Field(
        500, description="Most records one database read of a stream's replay returns."
    )
    backlog: int = Field(
        64,
        ge=1,
        description="Log events each job keeps in a replica's memory for streams that connect "
        "while the api is still recording them.",
    )


class WebhookSettings(BaseSettings):
    """Webhook subscriptions and deliveries (Standard Webhooks)."""

    model_config = SettingsConfigDict(env_prefix="THEODOLITE_WEBHOOK_")

    timeout_s: float = Field(10.0, description="Per-request limit of one delivery attempt.")
    concurrency: int = Field(16, ge=1, description="Requests in flight at once, per replica.")
    per_endpoint_concurrency: int = Field(
        2, ge=1, description="Requests in flight to one URL at once, per replica."
    )
    max_attempts: int = Field(
        12, ge=1, description="Attempts of one delivery before it is marked failed."
    )
    retry_base_s: float = Field(
        2.0, gt=0, description="First retry delay; doubled after each failed attempt."
    )
    retry_max_delay_s: float = Field(3600.0, gt=0, description="Longest delay between attempts.")
    disable_after_failures: int = Field(
        15, ge=1, description="Failed attempts in a row that disable a subscription."
    )
    poll_interval_s: float = Field(
        1.0, description="How often due deliveries are looked for when nothing woke the sender."
    )
    allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks webhooks may be sent into although they are not global (loopback, "
        'private, ...), as a JSON list of CIDRs, e.g. ["10.20.0.0/16"]: for tests and private '
        "deployments. Every subscriber can then reach them. Unspecified and multicast addresses "
        "and the testbed's own services stay refused.",
    )


class SweepSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_SWEEP_")

    max_points: int = Field(500, ge=1, description="Most child jobs one sweep may create.")


class ApiSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_API_")

    host: str = Field("127.0.0.1", description="Address the api binds.")
    port: int = Field(8000, description="Port the api binds.")
    internal_host: str = Field(
        "127.0.0.1",
        description="Address the internal listener (workers' claims, never public) binds.",
    )
    internal_port: int = Field(8001, description="Port the internal listener binds.")
    worker_secret: SecretStr | None = Field(
        None,
        description="Random secret each worker's token is derived from "
        "(HMAC-SHA256 of the worker id): required in production; in development, unset means a "
        "fixed development secret that anyone can derive tokens from.",
    )
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
    max_queues: int = Field(
        50, ge=1, description="Most queues there may be (each is two quorum queues)."
    )
    callback_denied_networks: list[str] = Field(
        ["169.254.0.0/16", "0.0.0.0/32", "::/128"],
        description="Networks a callback URL may not point into (besides the testbed's own "
        "services, always refused), e.g. cloud metadata endpoints.",
    )
    lost_after_s: float = Field(
        20.0, description="A running job unheard of (worker heartbeats) for this long is lost."
    )
    reaper_interval_s: float = Field(
        2.0, description="How often lost jobs and due retry attempts are looked for."
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    events: EventStreamSettings = Field(default_factory=EventStreamSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    sweeps: SweepSettings = Field(default_factory=SweepSettings)
    log_tail_lines: int = Field(20, description="Log lines shown in a job's body.")
    max_log_lines: int = Field(
        100_000,
        ge=1,
        description="Lines of a job's output the api keeps; the line that fills it says so.",
    )
    outbox_poll_interval_s: float = Field(
        1.0, description="How often the relay looks for unpublished events it was not told of."
    )

    def development_defaults(self) -> list[str]:
        # Unset, worker tokens derive from the development secret, which anyone can read.
        if self.worker_secret is None or not self.worker_secret.get_secret_value():
            return [
                "THEODOLITE_API_WORKER_SECRET (or THEODOLITE_API_WORKER_SECRET_FILE): a random "
                "secret of this deployment's own"
            ]
        return []
