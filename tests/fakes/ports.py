"""In-memory fakes of the ports the use cases need (STYLE: fakes, not mocks)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from notifier.domain.model import DeliveryEvent, OutboundMessage
from notifier.ports import ProviderError, ProviderReceipt


@dataclass
class ScriptedSender:
    """A channel provider that records every message and answers from a script: each
    queued ``ProviderError`` is raised once, in order; then it accepts."""

    provider: str
    sent: list[OutboundMessage] = field(default_factory=list)
    script: deque[ProviderError] = field(default_factory=deque)
    delay_seconds: float = 0.0

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        self.sent.append(message)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.script:
            raise self.script.popleft()
        return ProviderReceipt(self.provider, f"{self.provider}-{len(self.sent)}")


@dataclass
class RecordingEvents:
    published: list[DeliveryEvent] = field(default_factory=list)

    async def publish(self, events: Sequence[DeliveryEvent]) -> None:
        self.published.extend(events)


@dataclass
class SteppingClock:
    """Starts at a fixed instant and moves one millisecond per reading."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC))

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current
