"""Providers' rate limits, kept on our side: a leaky bucket (aiolimiter) per sending key,
so excess messages wait their turn in order instead of being refused with 429s.

Twilio queues what a number or Messaging Service can't send at once and fails it after
hours; SendGrid limits Mail Send requests per second. Both are better met by pacing here,
where waiting costs nothing and the order of a district's messages is kept."""

from __future__ import annotations

from collections.abc import Callable

from aiolimiter import AsyncLimiter

from notifier.domain.model import OutboundMessage


class KeyedPacer:
    """At most ``per_second`` messages per key (a sending number, the API account), in
    bursts of up to ``burst``; per process, so several replicas each pace their own share."""

    def __init__(
        self, per_second: float, key: Callable[[OutboundMessage], str], *, burst: int = 1
    ) -> None:
        self._per_second = per_second
        self._burst = max(1, burst)
        self._key = key
        self._limiters: dict[str, AsyncLimiter] = {}

    async def wait_turn(self, message: OutboundMessage) -> None:
        key = self._key(message)
        limiter = self._limiters.get(key)
        if limiter is None:
            # A bucket of `burst` drained at `per_second`.
            limiter = AsyncLimiter(self._burst, self._burst / self._per_second)
            self._limiters[key] = limiter
        await limiter.acquire()


def by_sender(message: OutboundMessage) -> str:
    """Twilio's limits are per sending number or Messaging Service."""
    return message.sender_address or ""


def one_account(message: OutboundMessage) -> str:
    """SendGrid's are per account (API key): one bucket for everything."""
    return ""
