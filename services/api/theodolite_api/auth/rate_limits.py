"""Writes are rate-limited per key (the ``limits`` library, moving window). The counts live in
``THEODOLITE_AUTH_RATE_LIMIT_STORAGE``: ``memory://`` counts per api process (N replicas allow
N times the rate); a ``redis://`` URL shares them."""

from __future__ import annotations

import math
import time
from functools import cache

import limits
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from theodolite.web.errors import DomainError
from theodolite_api.auth.callers import Caller


class TooManyRequests(DomainError, status_code=429, title="Too many requests"):
    """Over the rate limit; ``retry_after_s`` says when to try again."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class WriteLimiter:
    def __init__(self, rate: str, storage: str) -> None:
        self.rate = limits.parse(rate)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage))

    def hit(self, caller: Caller) -> None:
        """Count one write of the caller's key, or TooManyRequests when it is over the rate."""
        key = str(caller.key_id or caller.user_id)
        if self._limiter.hit(self.rate, "writes", key):
            return
        reset_at = self._limiter.get_window_stats(self.rate, "writes", key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"more than {self.rate} writes with this key: try again in {retry_after} s",
            retry_after,
        )


@cache
def write_limiter(rate: str, storage: str) -> WriteLimiter:
    return WriteLimiter(rate, storage)
