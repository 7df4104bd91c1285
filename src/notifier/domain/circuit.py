"""A circuit breaker per provider: when one keeps failing, stop calling it for a cool-down
and fail messages over to the other channel at once, instead of making every message wait
out its retries against a provider that is down; then let one call through to probe it.

closed ──(``failure_threshold`` failures in a row)──▶ open ──(``cool_down`` passed)──▶
half-open: one probe call ──success──▶ closed, ──failure──▶ open again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cool_down: timedelta = timedelta(seconds=30)
    state: CircuitState = CircuitState.CLOSED
    failures_in_a_row: int = 0
    opened_at: datetime | None = None
    probe_started_at: datetime | None = None

    def allows(self, now: datetime) -> bool:
        """Whether a call may go to the provider now (in half-open, only the one probe)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            assert self.opened_at is not None
            if now - self.opened_at < self.cool_down:
                return False
            self.state = CircuitState.HALF_OPEN
            self.probe_started_at = None
        # A probe that never reported back (its task was cancelled) does not hold the
        # circuit half-open forever: after a cool-down another call probes.
        if self.probe_started_at is not None and now - self.probe_started_at < self.cool_down:
            return False
        self.probe_started_at = now
        return True

    def succeeded(self) -> bool:
        """Record a call the provider answered; True when that closed the circuit."""
        was_open = self.state is not CircuitState.CLOSED
        self.state = CircuitState.CLOSED
        self.failures_in_a_row = 0
        self.opened_at = self.probe_started_at = None
        return was_open

    def failed(self, now: datetime) -> bool:
        """Record a call the provider failed (down, overloaded, no answer); True when that
        opened the circuit."""
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return True
        self.failures_in_a_row += 1
        if self.state is CircuitState.CLOSED and self.failures_in_a_row >= self.failure_threshold:
            self._open(now)
            return True
        return False

    def _open(self, now: datetime) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.probe_started_at = None
