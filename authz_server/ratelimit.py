"""Token buckets for the rate limits on the token, registration, login and introspection
endpoints (docs/requirements.md: DESIGN-5), in Redis when it is configured.

Each key (a digest of the caller's address, a client id, ...) has a bucket of
``per_minute`` tokens that refills continuously; a burst of one minute's worth
passes, then one request per ``60 / per_minute`` seconds. Two stores, one
interface (``check``/``spend`` return 0 or the ``Retry-After`` seconds;
``refund`` gives back a token ``spend`` took):

- ``RateLimiter``: in this process (the default). N processes allow N times the rate.
- ``RedisRateLimiter`` (``REDIS_URL``): one bucket per key for every node, updated
  atomically by a Lua script in one round trip. It fails open: see ``RedisStore``.

Who is limited, by which key, lives in ``oauth.limits``.
"""
from __future__ import annotations

import logging
import math
import threading
import time

log = logging.getLogger(__name__)


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

    def _wait(self, tokens: float) -> int:
        # Whole seconds until one token is there (the Retry-After value, RFC 6585 §4).
        return max(1, math.ceil((1.0 - tokens) * 60.0 / self.per_minute))

    def _current(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        return self._level(tokens, last, now)

    def check(self, key: str) -> int:
        """0 when ``key`` may go ahead now, else the whole seconds until it may
        (the ``Retry-After`` value, RFC 6585 §4). Does not spend a token."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens = self._current(key, now)
        return 0 if tokens >= 1.0 else self._wait(tokens)

    def spend(self, key: str) -> int:
        """Take a token for ``key``: 0 when one was available, else as ``check``."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens = self._current(key, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return self._wait(tokens)
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = (tokens - 1.0, now)
            return 0

    def refund(self, key: str) -> None:
        """Give back the token a ``spend`` took for a request that turned out not
        to count (a right device code). Spending first and refunding after makes
        check-and-spend one atomic step: parallel requests cannot all pass a
        check before any of them spends."""
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            if key in self._buckets:  # a missing bucket is full: nothing to give back
                self._buckets[key] = (min(float(self.per_minute), self._current(key, now) + 1.0), now)

    def _prune(self, now: float) -> None:
        # Full buckets carry no state; if the table is still full, start afresh
        # rather than grow without bound.
        self._buckets = {k: v for k, v in self._buckets.items() if self._level(*v, now) < self.per_minute}
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


# KEYS[1] the bucket (a hash: tokens, ts); ARGV[1] tokens per minute; ARGV[2]
# "1" to take a token, "0" to look, "-1" to give one back (a refund; returns 0).
# Returns 0 (go ahead) or the whole seconds until a token is there. The clock is
# Redis's own TIME, so nodes whose clocks differ still agree on every bucket. A
# missing key is a full bucket: a bucket refills completely in 60 s, so the key
# expires 61 s after its last spend.
_TOKEN_BUCKET = """
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, last = tonumber(b[1]), tonumber(b[2])
if tokens == nil or last == nil then tokens, last = rate, now end
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
tokens = math.min(rate, tokens + elapsed * rate / 60)
if ARGV[2] == '-1' then
  if b[1] then
    redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(rate, tokens + 1)), 'ts', tostring(now))
    redis.call('EXPIRE', KEYS[1], 61)
  end
  return 0
end
if tokens < 1 then
  return math.max(1, math.ceil((1 - tokens) * 60 / rate))
end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[1], 61)
end
return 0
"""


class RedisStore:
    """One Redis connection pool and the bucket script, shared by every limiter of
    a process, with a circuit breaker.

    Fails open: when Redis does not answer, the request is allowed and a warning
    logged, and Redis is not asked again for ``pause`` seconds. Rate limits
    guard against abuse; they are not what makes an answer correct (Postgres is
    the one source of truth, docs/architecture.md#caches-and-scale), and Redis is optional infrastructure.
    Failing closed would turn a Redis outage into an outage of sign-in, token
    issuance and refresh for every client; the short timeouts and the pause
    keep a dead Redis from adding latency to every request either.
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.25, pause: float = 5.0, clock=time.monotonic):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.prefix = prefix
        self.pause = pause
        self.clock = clock
        self.errors = redis.RedisError
        # One retry: a pooled connection that Redis closed (a restart) reconnects once.
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 1))
        self._script = self.client.register_script(_TOKEN_BUCKET)
        self._down_until = 0.0
        self._lock = threading.Lock()

    # The script's ARGV[2] for each action on a bucket.
    _ACTIONS = {"look": 0, "take": 1, "give": -1}

    def bucket(self, key: str, per_minute: int, action: str) -> int:
        """``take`` a token, ``look`` whether one is there, or ``give`` one back."""
        if self.clock() < self._down_until:
            return 0
        try:
            # EVALSHA; the script is loaded with EVAL only the first time a Redis sees it.
            return int(self._script(keys=[self.prefix + key], args=[per_minute, self._ACTIONS[action]]))
        except self.errors as e:
            self._unreachable(e, "rate limits: allowing requests without limits")
            return 0

    def set_once(self, key: str, seconds: int) -> bool | None:
        """SET NX with an expiry of ``seconds``: True when ``key`` was not set
        (it is now), False when it was. None when Redis does not answer: the
        caller decides what that means (oauth.assertion_replay falls back to
        the database)."""
        if self.clock() < self._down_until:
            return None
        try:
            return bool(self.client.set(self.prefix + key, b"1", nx=True, ex=max(1, int(seconds))))
        except self.errors as e:
            self._unreachable(e, "client assertion replays: checked in the database")
            return None

    def _unreachable(self, e, meanwhile: str) -> None:
        with self._lock:
            first = self.clock() >= self._down_until
            self._down_until = self.clock() + self.pause
        if first:
            log.warning("Redis unreachable (%s: %s); %s, next try in %.0f s",
                        e.__class__.__name__, e, meanwhile, self.pause)

    def delete(self, pattern: str) -> None:
        for key in self.client.scan_iter(match=self.prefix + pattern, count=500):
            self.client.delete(key)


class RedisRateLimiter:
    """The ``RateLimiter`` interface on a ``RedisStore``: the buckets named
    ``{prefix}{name}:{key}`` are shared by every process that uses the same Redis
    and prefix."""

    def __init__(self, store: RedisStore, name: str, per_minute: int):
        self.store = store
        self.name = name
        self.per_minute = per_minute

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, key: str) -> int:
        return self.store.bucket(f"{self.name}:{key}", self.per_minute, "look") if self.enabled else 0

    def spend(self, key: str) -> int:
        return self.store.bucket(f"{self.name}:{key}", self.per_minute, "take") if self.enabled else 0

    def refund(self, key: str) -> None:
        if self.enabled:
            self.store.bucket(f"{self.name}:{key}", self.per_minute, "give")

    def reset(self) -> None:
        try:
            self.store.delete(f"{self.name}:*")
        except self.store.errors:
            pass


def limiter(name: str, per_minute: int, store: RedisStore | None = None):
    """A limiter of ``per_minute`` for ``name``: in Redis when a store is given,
    else in this process."""
    if store is not None:
        return RedisRateLimiter(store, name, per_minute)
    return RateLimiter(per_minute)
