"""The ``TranslationCache`` port: machine translations kept per message and language."""

from __future__ import annotations

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database


class SqlTranslationCache:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def cached_translation(self, message_id: str, language: str) -> str | None:
        row = await self._db.first(
            sa.select(t.translations.c.text).where(
                t.translations.c.message_id == message_id,
                t.translations.c.language == language,
            )
        )
        return None if row is None else str(row.text)

    async def save_translation(
        self, message_id: str, language: str, text: str, provider: str
    ) -> None:
        # The first kept wins: two processes translating one message at once keep one text.
        await self._db.write(
            self._db.insert(t.translations)
            .values(
                message_id=message_id,
                language=language,
                text=text,
                provider=provider,
                created_at=self._db.clock.now(),
            )
            .on_conflict_do_nothing()
        )
