"""A token bucket per API caller."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SWEEP_ABOVE = 4_096
"""Callers tracked before the full buckets are dropped. The replies' limiter is keyed by the
address a reply came from: without the sweep, every phone that ever texted back stayed in
memory for the life of the process."""


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests, in bursts of up to ``burst``.
    In memory, per process: with several replicas each allows its own share.

    A caller whose bucket has filled again is the same as one never seen, so such buckets
    are dropped once more than ``sweep_above`` callers are tracked; the next sweep waits
    until twice as many are left, so a crowd of busy callers is not walked on every call."""

    per_minute: float
    burst: int
    sweep_above: int = SWEEP_ABOVE
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _next_sweep: int = 0

    @property
    def tracked(self) -> int:
        """Callers with a bucket not yet full (or not yet swept)."""
        return len(self._buckets)

    async def take(self, caller: str) -> None:
        """Raises ``RateLimited`` when the caller is over their rate."""
        rate = self.per_minute / 60.0
        async with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                raise RateLimited(math.ceil((1.0 - tokens) / rate))
            self._buckets[caller] = (tokens - 1.0, now)
            if len(self._buckets) > max(self.sweep_above, self._next_sweep):
                self._sweep(now, rate)

    def _sweep(self, now: float, rate: float) -> None:
        full = float(self.burst)
        self._buckets = {
            caller: (tokens, last)
            for caller, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * rate < full
        }
        self._next_sweep = 2 * len(self._buckets)
