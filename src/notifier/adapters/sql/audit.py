"""The ``AuditLog`` port: who changed what and why, never deleted by the service."""

from __future__ import annotations

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database
from notifier.domain.model import Channel
from notifier.domain.records import AuditEntry


class SqlAuditLog:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def append_audit(self, entry: AuditEntry) -> None:
        await self._db.write(
            sa.insert(t.audit_log).values(
                occurred_at=entry.occurred_at,
                actor=entry.actor,
                scope=entry.scope,
                action=entry.action,
                channel=entry.channel.value if entry.channel else None,
                address=entry.address,
                note=entry.note,
                request_id=entry.request_id,
                outcome=entry.outcome,
            )
        )

    async def audit_entries(
        self, limit: int = 100, offset: int = 0, *, address: str | None = None
    ) -> list[AuditEntry]:
        statement = sa.select(t.audit_log).order_by(t.audit_log.c.id.desc())
        if address is not None:
            statement = statement.where(t.audit_log.c.address == address)
        rows = await self._db.rows(statement.limit(limit).offset(offset))
        return [
            AuditEntry(
                occurred_at=row.occurred_at,
                actor=row.actor,
                scope=row.scope,
                action=row.action,
                channel=Channel(row.channel) if row.channel else None,
                address=row.address,
                note=row.note,
                request_id=row.request_id,
                outcome=row.outcome,
            )
            for row in rows
        ]
