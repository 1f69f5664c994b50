"""The in-process token bucket behind the registration rate limit (spec-checklist
A.14 item 77, C-15), with a stepped clock: a burst of one minute's worth, then one
request per 60/rate seconds, Retry-After in whole seconds, keys independent."""
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


def test_the_table_of_buckets_is_bounded():
    clock = Clock()
    limiter = RateLimiter(1, max_keys=10, clock=clock)
    for i in range(25):
        limiter.spend(f"k{i}")
    assert len(limiter._buckets) <= 10
