"""A circuit breaker per provider: when one keeps failing, stop calling it for a cool-down
and fail messages over to the other channel at once, instead of making every message wait
out its retries against a provider that is down; then let one call through to probe it.

closed ──(failing: see below)──▶ open ──(``cool_down`` passed)──▶ half-open: one probe
call ──success──▶ closed, ──failure──▶ open again.

Failing means: within the last ``window``, at least ``failure_threshold`` calls failed and
they were at least half of the calls answered. Not "N failures in a row": with dozens of
sends in flight, answers arrive in the order they are quick, and failures (a 500, a 429)
are quicker than successes, so a provider failing one call in five was seen to give 21
failures in a row — which would stop a provider that delivers four texts in five.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

FAILING_SHARE = 0.5
"""The share of a window's answered calls that must have failed for the circuit to open."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cool_down: timedelta = timedelta(seconds=30)
    window: timedelta = timedelta(seconds=10)
    state: CircuitState = CircuitState.CLOSED
    opened_at: datetime | None = None
    probe_started_at: datetime | None = None
    recent: deque[tuple[datetime, bool]] = field(default_factory=deque)
    """(when, failed) of the calls answered within ``window``, oldest first."""

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

    def succeeded(self, now: datetime) -> bool:
        """Record a call the provider answered; True when that closed the circuit."""
        was_open = self.state is not CircuitState.CLOSED
        if was_open:
            self.state = CircuitState.CLOSED
            self.opened_at = self.probe_started_at = None
            self.recent.clear()
        self._remember(now, failed=False)
        return was_open

    def failed(self, now: datetime) -> bool:
        """Record a call the provider failed (down, overloaded, no answer); True when that
        opened the circuit."""
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return True
        self._remember(now, failed=True)
        if self.state is CircuitState.CLOSED and self._failing():
            self._open(now)
            return True
        return False

    def _remember(self, now: datetime, *, failed: bool) -> None:
        self.recent.append((now, failed))
        while self.recent and now - self.recent[0][0] > self.window:
            self.recent.popleft()

    def _failing(self) -> bool:
        failures = sum(1 for _, failed in self.recent if failed)
        return failures >= self.failure_threshold and failures >= FAILING_SHARE * len(self.recent)

    def _open(self, now: datetime) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.probe_started_at = None
        self.recent.clear()
