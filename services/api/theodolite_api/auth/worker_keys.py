"""The worker secret and what is derived from it: each worker's token (its internal-plane
credential and its event-signing key) and the api's own event-signing key. No FastAPI here, so
the notifications and the lifespan can use it without importing the routes' dependencies."""

from __future__ import annotations

import hashlib
import hmac

from theodolite.settings import Environment
from theodolite.signing import API_SIGNER, KeyLookup, SigningKey, api_signing_key, signer_worker
from theodolite_api.settings import ApiSettings

# Development only (a stack started without THEODOLITE_API_WORKER_SECRET): anyone who reads this
# source can mint worker tokens, so production refuses to start with it.
DEVELOPMENT_WORKER_SECRET = "theodolite-dev-worker-secret"


class WorkerSecretMissing(ValueError):
    """Production with no worker secret of its own."""


def worker_secret(settings: ApiSettings) -> str:
    """The secret worker tokens are derived from (the development one outside production)."""
    if settings.worker_secret is not None:
        secret = settings.worker_secret.get_secret_value()
        if secret and secret != DEVELOPMENT_WORKER_SECRET:
            return secret
    if settings.environment is Environment.PRODUCTION:
        raise WorkerSecretMissing("THEODOLITE_API_WORKER_SECRET must be set outside development")
    return DEVELOPMENT_WORKER_SECRET


def worker_token(secret: str, worker_id: str) -> str:
    """The one token of ``worker_id``."""
    mac = hmac.new(secret.encode(), worker_id.encode(), hashlib.sha256).hexdigest()
    return f"{worker_id}.{mac}"


def event_signers(secret: str) -> KeyLookup:
    """The keys of who may sign events: the api itself and every worker (its token)."""
    api_key = api_signing_key(secret)

    def key_for(signer: str) -> bytes | None:
        if signer == API_SIGNER:
            return api_key
        worker_id = signer_worker(signer)
        return None if worker_id is None else worker_token(secret, worker_id).encode()

    return key_for


def api_event_key(secret: str) -> SigningKey:
    """What the api signs its own events with (its announcements and control messages)."""
    return SigningKey(API_SIGNER, api_signing_key(secret))


def token_worker(secret: str, token: str) -> str | None:
    """The worker a token belongs to; None when the secret did not make it."""
    worker_id, _, _ = token.rpartition(".")
    if not worker_id or not hmac.compare_digest(token, worker_token(secret, worker_id)):
        return None
    return worker_id
