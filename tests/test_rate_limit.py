"""The token bucket per caller, on a clock the test moves; and its memory staying bounded by
the callers that are actually being limited."""

from __future__ import annotations

import pytest

from notifier.rate_limit import RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_caller_gets_its_burst_then_waits_for_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)  # a token every 10 s

    await limiter.take("token-a")
    await limiter.take("token-a")
    with pytest.raises(RateLimited) as limited:
        await limiter.take("token-a")
    assert limited.value.retry_after == 10
    await limiter.take("token-b")  # another caller has a bucket of its own

    clock.now += 10
    await limiter.take("token-a")
    with pytest.raises(RateLimited):
        await limiter.take("token-a")


async def test_callers_whose_buckets_filled_again_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, sweep_above=3, clock=clock)
    for caller in ("sms:+15555550101", "sms:+15555550102", "sms:+15555550103"):
        await limiter.take(caller)
    assert limiter.tracked == 3

    clock.now += 1  # one token back each: their buckets are full again
    await limiter.take("sms:+15555550104")

    assert limiter.tracked == 1


async def test_a_caller_still_over_its_rate_is_not_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, sweep_above=2, clock=clock)
    await limiter.take("sms:+15555550101")
    await limiter.take("sms:+15555550101")
    with pytest.raises(RateLimited):
        await limiter.take("sms:+15555550101")

    clock.now += 0.5
    await limiter.take("sms:+15555550102")
    await limiter.take("sms:+15555550103")  # over sweep_above: a sweep

    with pytest.raises(RateLimited):
        await limiter.take("sms:+15555550101")
