"""The ``Inbox`` port: the recipients' app inbox, written by driver SQL (``Statements``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.group_commit import GroupCommit
from notifier.adapters.sql.database import Database
from notifier.adapters.sql.statements import InboxRow
from notifier.domain.model import OutboundMessage


class SqlInbox:
    def __init__(self, database: Database) -> None:
        self._db = database
        # Each write joined with its concurrent peers into one transaction (group_commit.py).
        self._copies = GroupCommit(self._write_many, isolates=database.isolates)

    async def write_inbox(self, message: OutboundMessage) -> str:
        return await self._copies.write(message)

    async def _write_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        rows, now, statements = inbox_rows(messages), self._db.clock.now(), self._db.statements
        await self._db.in_transaction(
            lambda connection: statements.insert_inbox_entries(connection, rows, now)
        )
        return [message.delivery_id for message in messages]

    async def inbox(self, recipient_id: str) -> list[Mapping[str, Any]]:
        """The recipient's entries, oldest first (what the app would list)."""
        rows = await self._db.rows(
            sa.select(t.app_inbox)
            .where(t.app_inbox.c.recipient_id == recipient_id)
            .order_by(t.app_inbox.c.created_at)
        )
        return [dict(row._mapping) for row in rows]


def inbox_rows(messages: Sequence[OutboundMessage]) -> list[InboxRow]:
    """The entries' columns; a claim writes them too, for its inbox copy (``SqlLedger``)."""
    return [
        InboxRow(
            message.delivery_id,
            message.recipient_id,
            message.message_id,
            message.conversation_id,
            message.sender_name or "",
            message.inbox_body or "",
            message.language,
        )
        for message in messages
    ]
