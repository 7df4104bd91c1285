"""The sandbox outbox: what the sandbox providers would have sent (``adapters/sandbox.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database
from notifier.domain.model import OutboundMessage


class SqlSandboxOutbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def record_sandbox_send(self, message: OutboundMessage) -> int:
        """The entry's id, the same for every send of one delivery."""
        if message.sms is not None:
            subject, body, html = None, message.sms.body, None
        elif message.email is not None:
            subject, body, html = message.email.subject, message.email.text, message.email.html
        else:
            raise ValueError("the sandbox records SMS and email only")
        statement = (
            self._db.insert(t.sandbox_outbox)
            .values(
                delivery_id=message.delivery_id,
                channel=message.channel.value,
                to_address=message.to,
                from_address=message.sender_address,
                subject=subject,
                body=body,
                html=html,
                language=message.language,
                created_at=self._db.clock.now(),
            )
            .on_conflict_do_nothing()
            .returning(t.sandbox_outbox.c.id)
        )
        async with self._db.engine.begin() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                row = (
                    await connection.execute(
                        sa.select(t.sandbox_outbox.c.id).where(
                            t.sandbox_outbox.c.delivery_id == message.delivery_id
                        )
                    )
                ).one()
        return int(row.id)

    async def sandbox_outbox(self) -> list[Mapping[str, Any]]:
        rows = await self._db.rows(sa.select(t.sandbox_outbox).order_by(t.sandbox_outbox.c.id))
        return [dict(row._mapping) for row in rows]
