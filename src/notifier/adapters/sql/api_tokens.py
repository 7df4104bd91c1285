"""The ``TokenStore`` port: API tokens kept as their SHA-256 (``adapters/api_tokens.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database
from notifier.domain.records import StoredToken


class SqlTokenStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add_api_token(self, token: StoredToken) -> None:
        await self._db.write(
            sa.insert(t.api_tokens).values(
                name=token.name,
                scope=token.scope,
                sha256=token.sha256,
                recipient_id=token.recipient_id,
                created_at=token.created_at,
            )
        )

    async def api_token(self, sha256: str) -> StoredToken | None:
        row = await self._db.first(
            sa.select(t.api_tokens).where(
                t.api_tokens.c.sha256 == sha256, t.api_tokens.c.revoked_at.is_(None)
            )
        )
        if row is None:
            return None
        return StoredToken(row.name, row.scope, row.sha256, row.recipient_id, row.created_at)
