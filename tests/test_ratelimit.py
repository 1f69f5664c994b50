"""The token buckets behind the rate limits (docs/requirements.md: A14-77,
C-15). In-process, with a stepped clock: a burst of one minute's worth, then one
request per 60/rate seconds, Retry-After in whole seconds, keys independent. In
Redis (a real Redis, database 5, keys under a prefix of each test's
own): the same arithmetic, prefixed keys that expire, buckets shared between
processes, and failing open when Redis is unreachable. The settings that name
the limits. The limits over HTTP are in tests/web/test_rate_limits.py."""
from __future__ import annotations

from authz_server.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_steady_rate_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.spend("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.spend("a") == 20
    clock.now += 5
    assert limiter.check("a") == 15 and limiter.spend("a") == 15
    clock.now += 15
    assert limiter.check("a") == 0
    assert limiter.spend("a") == 0
    assert limiter.spend("a") == 20
    # Another key has its own bucket.
    assert limiter.spend("b") == 0


def test_refill_is_capped_at_one_minute_of_burst():
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    limiter.spend("a")
    clock.now += 3600
    assert [limiter.spend("a") for _ in range(3)] == [0, 0, 30]


def test_a_clock_going_backwards_refills_nothing():
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.spend("a") == 0
    clock.now -= 500
    assert limiter.spend("a") == 60


def test_zero_disables_the_limit_and_reset_forgets_everything():
    assert all(RateLimiter(0).spend("a") == 0 for _ in range(100))
    limiter = RateLimiter(1, clock=Clock())
    limiter.spend("a")
    assert limiter.spend("a") > 0
    limiter.reset()
    assert limiter.spend("a") == 0


def test_refund_gives_back_a_spent_token_never_more_than_a_full_bucket():
    """Spend first, refund what did not count (a right device code): the refund
    restores the token, and a bucket never holds more than a minute's worth."""
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert [limiter.spend("a") for _ in range(2)] == [0, 0]
    limiter.refund("a")
    assert limiter.spend("a") == 0 and limiter.spend("a") == 30
    limiter.refund("full")  # a bucket never spent is full already
    limiter.refund("a")
    limiter.refund("a")
    limiter.refund("a")
    assert [limiter.spend("a") for _ in range(3)] == [0, 0, 30]
    assert [limiter.spend("full") for _ in range(3)] == [0, 0, 30]
    RateLimiter(0).refund("a")  # off: nothing to do


def test_the_table_of_buckets_is_bounded():
    clock = Clock()
    limiter = RateLimiter(1, max_keys=10, clock=clock)
    for i in range(25):
        limiter.spend(f"k{i}")
    assert len(limiter._buckets) <= 10


# --- the Redis-backed limiter (REDIS_URL): same interface, shared buckets -------

import logging  # noqa: E402

import pytest  # noqa: E402

from authz_server.ratelimit import RedisRateLimiter, RedisStore, limiter  # noqa: E402
from tests.helpers import REDIS_URL, closed_port  # noqa: E402

def test_redis_burst_then_retry_after_and_keys_independent(redis_prefix):
    limiter_ = RedisRateLimiter(RedisStore(REDIS_URL, redis_prefix), "token", 3)
    assert limiter_.check("a") == 0
    assert [limiter_.spend("a") for _ in range(3)] == [0, 0, 0]
    # 3 a minute: one every 20 s (a few ms have refilled a sliver of a token).
    assert limiter_.spend("a") in (19, 20)
    assert limiter_.check("a") in (19, 20)
    assert limiter_.spend("b") == 0


def test_redis_bucket_refills_with_time(redis_prefix):
    store = RedisStore(REDIS_URL, redis_prefix)
    limiter_ = RedisRateLimiter(store, "login", 60)
    assert all(limiter_.spend("a") == 0 for _ in range(60))
    assert limiter_.spend("a") == 1
    # The bucket's clock is Redis's own TIME (no clock of ours to move): instead of
    # waiting, move the bucket's last update 1.1 s into the past, as if that long passed.
    store.client.hincrbyfloat(redis_prefix + "login:a", "ts", -1.1)
    assert limiter_.spend("a") == 0
    assert limiter_.spend("a") == 1


def test_redis_refund_gives_back_a_spent_token_never_more_than_a_full_bucket(redis_prefix):
    store = RedisStore(REDIS_URL, redis_prefix)
    limiter_ = RedisRateLimiter(store, "device-code", 2)
    assert [limiter_.spend("a") for _ in range(2)] == [0, 0]
    limiter_.refund("a")
    assert limiter_.spend("a") == 0 and limiter_.spend("a") > 0
    for _ in range(3):
        limiter_.refund("a")
    spends = [limiter_.spend("a") for _ in range(3)]
    assert spends[:2] == [0, 0] and spends[2] > 0
    limiter_.refund("never-spent")  # a missing key is a full bucket: nothing is written
    assert not store.client.exists(redis_prefix + "device-code:never-spent")


def test_redis_keys_carry_the_prefix_and_expire(redis_prefix):
    store = RedisStore(REDIS_URL, redis_prefix)
    limiter_ = RedisRateLimiter(store, "token", 5)
    limiter_.check("looked-at")
    limiter_.spend("spent")
    keys = sorted(k.decode() for k in store.client.scan_iter(match=redis_prefix + "*"))
    # Looking creates nothing; a spend leaves one key, gone once the bucket would be full again.
    assert keys == [redis_prefix + "token:spent"]
    assert 0 < store.client.ttl(keys[0]) <= 61
    other = RedisRateLimiter(store, "login", 5)
    other.spend("spent")
    limiter_.reset()
    assert [k.decode() for k in store.client.scan_iter(match=redis_prefix + "*")] == [redis_prefix + "login:spent"]


def test_redis_buckets_are_shared_between_stores_with_one_prefix(redis_prefix):
    """Two processes (two stores, two connection pools) spend one budget; another
    prefix (another deployment on the same Redis) has its own."""
    a = RedisRateLimiter(RedisStore(REDIS_URL, redis_prefix), "token", 2)
    b = RedisRateLimiter(RedisStore(REDIS_URL, redis_prefix), "token", 2)
    assert a.spend("k") == 0 and b.spend("k") == 0
    assert a.spend("k") > 0 and b.spend("k") > 0
    elsewhere = RedisRateLimiter(RedisStore(REDIS_URL, redis_prefix + "other:"), "token", 2)
    assert elsewhere.spend("k") == 0


def test_redis_unreachable_fails_open_with_one_warning(caplog):
    """Redis down: every request is allowed, one warning is logged, and Redis is
    not asked again until the pause is over."""
    now = [100.0]
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/5", "authz_test:", pause=5.0, clock=lambda: now[0])
    limiter_ = RedisRateLimiter(store, "token", 1)
    calls = []
    script = store._script
    store._script = lambda **kw: calls.append(kw) or script(**kw)
    with caplog.at_level(logging.WARNING, logger="authz_server.ratelimit"):
        assert [limiter_.spend("a") for _ in range(5)] == [0] * 5
        assert limiter_.check("a") == 0
        assert len(calls) == 1
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1
        now[0] += 6  # past the pause: tried again, still down, warned again
        assert limiter_.spend("a") == 0
        assert len(calls) == 2
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 2
    limiter_.reset()  # a reset against a dead Redis does not raise either


def test_limiter_factory_picks_the_store(redis_prefix):
    assert isinstance(limiter("token", 5), RateLimiter)
    assert isinstance(limiter("token", 5, RedisStore(REDIS_URL, redis_prefix)), RedisRateLimiter)
    assert RedisRateLimiter(RedisStore(REDIS_URL, redis_prefix), "token", 0).spend("a") == 0


# --- the settings -----------------------------------------------------------------

from authz_server.config import ConfigError, Settings  # noqa: E402


def test_rate_limit_settings_defaults_and_environment():
    defaults = Settings.from_env({"AUTHZ_ENV": "development"})
    assert (defaults.token_rate, defaults.client_auth_failure_rate, defaults.introspection_rate,
            defaults.login_rate, defaults.registration_rate) == (1200, 60, 6000, 300, 20)
    assert defaults.redis_url is None and defaults.trusted_proxies == 0
    assert defaults.rate_limit_prefix == "authz:ratelimit:"
    s = Settings.from_env({"AUTHZ_ENV": "development", "AUTHZ_TOKEN_RATE": "0", "AUTHZ_CLIENT_AUTH_FAILURE_RATE": "5",
                           "AUTHZ_INTROSPECTION_RATE": "7", "AUTHZ_LOGIN_RATE": "9", "AUTHZ_TRUSTED_PROXIES": "2",
                           "REDIS_URL": "rediss://cache.internal:6380/1", "AUTHZ_RATE_LIMIT_PREFIX": "acme:rl:"})
    assert (s.token_rate, s.client_auth_failure_rate, s.introspection_rate, s.login_rate) == (0, 5, 7, 9)
    assert (s.trusted_proxies, s.redis_url, s.rate_limit_prefix) == (2, "rediss://cache.internal:6380/1", "acme:rl:")


@pytest.mark.parametrize("env, message", [
    ({"AUTHZ_TOKEN_RATE": "many"}, "AUTHZ_TOKEN_RATE must be an integer"),
    ({"AUTHZ_LOGIN_RATE": "-1"}, "AUTHZ_LOGIN_RATE must not be negative"),
    ({"REDIS_URL": "http://cache.internal:6379"}, "REDIS_URL must be a redis://"),
    ({"AUTHZ_TRUSTED_PROXIES": "9"}, "AUTHZ_TRUSTED_PROXIES"),
])
def test_bad_rate_limit_settings_are_refused_with_the_fix(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"AUTHZ_ENV": "development", **env})
