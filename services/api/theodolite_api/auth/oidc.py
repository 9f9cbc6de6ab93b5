"""OIDC bearer tokens: a JWT from the configured issuer, checked against its published keys
(JWKS, fetched once and refreshed by PyJWT when a token names a key it has not seen)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt

from theodolite_api.auth.callers import Unauthorized
from theodolite_api.auth.settings import OidcSettings


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        assert settings.issuer is not None, "an issuer is configured"
        self.settings = settings
        self._issuer: str = settings.issuer
        self._keys: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _key_client(self) -> jwt.PyJWKClient:
        async with self._lock:
            if self._keys is None:
                url = self.settings.jwks_url or await self._discover_jwks_url()
                self._keys = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
            return self._keys

    async def _discover_jwks_url(self) -> str:
        url = f"{self._issuer.rstrip('/')}/.well-known/openid-configuration"
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url)
        response.raise_for_status()
        jwks_uri: str = response.json()["jwks_uri"]
        return jwks_uri

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims, or Unauthorized saying why it does not hold."""
        try:
            keys = await self._key_client()
            # PyJWKClient fetches with urllib: keep that off the event loop.
            signing_key = await asyncio.to_thread(keys.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=self.settings.algorithms,
                audience=self.settings.audience,
                issuer=self._issuer,
                leeway=self.settings.leeway_s,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": self.settings.audience is not None,
                },
            )
        except (jwt.PyJWTError, httpx.HTTPError, KeyError) as exc:
            raise Unauthorized(f"the bearer token does not verify: {exc}") from exc
        return claims

    def groups_of(self, claims: dict[str, Any]) -> dict[str, str]:
        """``{group name: role}`` from the groups claim (``name`` or ``name:role``)."""
        found = claims.get(self.settings.groups_claim) or []
        if isinstance(found, str):
            found = [found]
        groups: dict[str, str] = {}
        for entry in found:
            name, _, role = str(entry).partition(":")
            groups[name] = role or "member"
        return groups
