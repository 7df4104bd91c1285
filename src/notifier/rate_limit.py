"""A token bucket per API caller."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests, in bursts of up to ``burst``.
    In memory, per process: with several replicas each allows its own share."""

    per_minute: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self, caller: str) -> None:
        """Raises ``RateLimited`` when the caller is over their rate."""
        rate = self.per_minute / 60.0
        async with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                raise RateLimited(math.ceil((1.0 - tokens) / rate))
            self._buckets[caller] = (tokens - 1.0, now)
