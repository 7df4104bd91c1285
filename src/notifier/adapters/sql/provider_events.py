"""The ``ProviderEvents`` port: provider events already processed, by key."""

from __future__ import annotations

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database

EVENT_KEY_LENGTH = 200
"""The event_key column's length: longer keys (which providers don't promise to avoid) are
kept by their start."""


class SqlProviderEvents:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def provider_event_seen(self, provider: str, event_key: str) -> bool:
        row = await self._db.first(
            sa.select(t.provider_events.c.event_key).where(
                t.provider_events.c.provider == provider,
                t.provider_events.c.event_key == event_key,
            )
        )
        return row is not None

    async def remember_provider_event(self, provider: str, event_key: str) -> None:
        await self._db.write(
            self._db.insert(t.provider_events)
            .values(
                provider=provider,
                event_key=event_key[:EVENT_KEY_LENGTH],
                seen_at=self._db.clock.now(),
            )
            .on_conflict_do_nothing()
        )
