"""An in-memory fake of the Suppressions port (a provider's own block list, such as SendGrid's
bounce list), for reset tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from notifier.ports import ProviderError


@dataclass
class RecordingSuppressions:
    """Records every removal asked for; each queued ``ProviderError`` is raised once, in
    order, before removals succeed again."""

    provider: str = "sendgrid-fake"
    asked: list[str] = field(default_factory=list)
    """Every call, including those that failed."""
    removed: list[str] = field(default_factory=list)
    script: deque[ProviderError] = field(default_factory=deque)

    async def remove(self, address: str) -> None:
        self.asked.append(address)
        if self.script:
            raise self.script.popleft()
        self.removed.append(address)
