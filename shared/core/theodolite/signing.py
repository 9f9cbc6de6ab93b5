"""Signed messages on the broker: who sent an event is proven, not read from the event.

Anyone holding broker credentials could publish a ``job.succeeded`` for any job. So every
message a service publishes carries two headers: its signer (``api`` or ``worker:<id>``) and an
HMAC-SHA256 of the body under that signer's key. A worker's key is its own worker token (which
only it and the api can compute); the api's key is derived from the worker secret under a label
no worker id can take. Consumers in the api check the signature before a handler runs and drop
what fails; handlers then decide whether that signer may say it (the claim holder, for job events).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SIGNER_HEADER = "theodolite-signer"
SIGNATURE_HEADER = "theodolite-signature"
API_SIGNER = "api"
_WORKER_PREFIX = "worker:"
# HTTP headers and settings cannot carry NUL, so no worker id makes this label.
_API_KEY_LABEL = b"\x00theodolite-api-events"


def worker_signer(worker_id: str) -> str:
    return f"{_WORKER_PREFIX}{worker_id}"


def signer_worker(signer: str | None) -> str | None:
    """The worker id of a ``worker:<id>`` signer; None for the api or anything else."""
    if signer is None or not signer.startswith(_WORKER_PREFIX):
        return None
    return signer.removeprefix(_WORKER_PREFIX) or None


def api_signing_key(worker_secret: str) -> bytes:
    return hmac.new(worker_secret.encode(), _API_KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """What a publisher signs with: its signer name and its key."""

    signer: str
    key: bytes

    def headers(self, body: bytes) -> dict[str, str]:
        return {SIGNER_HEADER: self.signer, SIGNATURE_HEADER: _mac(self.key, body)}


# The key of a signer, or None for a signer this side does not know.
KeyLookup = Callable[[str], bytes | None]


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def verified_signer(
    body: bytes, headers: Mapping[str, object] | None, key_for: KeyLookup
) -> str | None:
    """The signer whose signature over ``body`` the headers carry; None when unsigned or forged."""
    if not headers:
        return None
    signer = _text(headers.get(SIGNER_HEADER))
    signature = _text(headers.get(SIGNATURE_HEADER))
    if not signer or not signature:
        return None
    key = key_for(signer)
    if key is None or not hmac.compare_digest(signature, _mac(key, body)):
        return None
    return signer
