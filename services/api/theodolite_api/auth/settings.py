"""Authentication settings: API keys always; OIDC bearer tokens when an issuer is configured."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OidcSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_OIDC_")

    issuer: str | None = Field(
        None, description="The OIDC issuer (``iss``) whose access tokens are accepted; unset: none."
    )
    audience: str | None = Field(None, description="The ``aud`` the tokens must carry.")
    jwks_url: str | None = Field(
        None,
        description="Where the issuer's signing keys are; unset: the issuer's discovery document.",
    )
    username_claim: str = Field("preferred_username", description="Claim naming the user.")
    groups_claim: str = Field(
        "groups",
        description="Claim listing the user's groups: ``name`` (member) or ``name:role``.",
    )
    admin_group: str | None = Field(
        None, description="A group in the groups claim that makes its users administrators."
    )
    algorithms: list[str] = Field(["RS256", "ES256"], description="Accepted signatures.")
    leeway_s: float = Field(30.0, description="Clock skew allowed on exp and nbf.")


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEODOLITE_AUTH_")

    oidc: OidcSettings = Field(default_factory=OidcSettings)
    write_rate_limit: str = Field(
        "600/minute", description="Most writes (POST, PUT, PATCH, DELETE) per key, e.g. 60/minute."
    )
    rate_limit_storage: str = Field(
        "memory://", description="Where the counts are: memory:// (per process) or a redis:// URL."
    )
    key_last_used_resolution_s: float = Field(
        60.0, description="A key's last use is written at most this often."
    )
