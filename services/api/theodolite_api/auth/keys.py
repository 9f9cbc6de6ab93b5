"""API keys: ``thd_<prefix>_<secret>``. The prefix (48 bits, hex) finds the row; only the SHA-256
of the secret (256 random bits) is stored, so a leaked table lets no one in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_MARK = "thd"


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    prefix: str
    secret_sha256: str


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> NewKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(f"{KEY_MARK}_{prefix}_{secret}", prefix, secret_hash(secret))


def split_key(key: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed key, else None."""
    mark, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != KEY_MARK or len(prefix) != 12 or not secret:
        return None
    return prefix, secret


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_sha256)
