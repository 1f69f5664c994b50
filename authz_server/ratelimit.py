"""In-process token buckets (DESIGN §5 "rate limits on token, registration, login
and introspection endpoints").

Each key (for example a digest of the caller's address) has a bucket of
``per_minute`` tokens that refills continuously; a burst of one minute's worth
passes, then one request per ``60 / per_minute`` seconds. The buckets live in
this process, so N nodes allow N times the rate: a Redis-backed limiter
(``REDIS_URL``) will replace this one for shared limits.
"""
from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int, max_keys: int = 10000, clock=time.monotonic):
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def _level(self, tokens: float, last: float, now: float) -> float:
        # A clock that went backwards counts as no time elapsed.
        return min(float(self.per_minute), tokens + max(0.0, now - last) * self.per_minute / 60.0)

    def check(self, key: str) -> int:
        """0 when ``key`` may go ahead now, else the whole seconds until it may
        (the ``Retry-After`` value, RFC 6585 §4). Does not spend a token."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = self._level(tokens, last, now)
        return 0 if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) * 60.0 / self.per_minute))

    def spend(self, key: str) -> int:
        """Take a token for ``key``: 0 when one was available, else as ``check``."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = self._level(tokens, last, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) * 60.0 / self.per_minute))
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = (tokens - 1.0, now)
            return 0

    def _prune(self, now: float) -> None:
        # Full buckets carry no state; if the table is still full, start afresh
        # rather than grow without bound.
        self._buckets = {k: v for k, v in self._buckets.items() if self._level(*v, now) < self.per_minute}
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
