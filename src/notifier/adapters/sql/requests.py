"""The ``SentRequests`` port: each message's first send request, kept as JSON, written by
driver SQL (``Statements``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database
from notifier.adapters.sql.statements import RequestRow
from notifier.domain.model import Attachment, RequestKind, Sender, SendRequest


class SqlSentRequests:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def save_requests(self, requests: Sequence[SendRequest]) -> None:
        """Keep each request (the first of its message). One statement for the batch."""
        rows = [RequestRow(r.message_id, _request_to_json(r)) for r in requests]
        now, statements = self._db.clock.now(), self._db.statements
        await self._db.in_transaction(
            lambda connection: statements.insert_requests(connection, rows, now)
        )

    async def load_request(self, message_id: str) -> SendRequest | None:
        row = await self._db.first(
            sa.select(t.send_requests.c.payload).where(t.send_requests.c.message_id == message_id)
        )
        return None if row is None else _request_from_json(row.payload)


def _request_to_json(request: SendRequest) -> dict[str, Any]:
    # Field by field rather than dataclasses.asdict, which deep-copies every value on its
    # way: a batch keeps each of its requests, and asdict was a percent of the service's CPU.
    sender = request.sender
    return {
        "request_id": request.request_id,
        "message_id": request.message_id,
        "conversation_id": request.conversation_id,
        "district_id": request.district_id,
        "kind": request.kind,
        "sender": {"id": sender.id, "display_name": sender.display_name, "role": sender.role},
        "body": request.body,
        "language": request.language,
        "translations": dict(request.translations),
        "attachments": [
            {"filename": a.filename, "url": a.url, "size_bytes": a.size_bytes}
            for a in request.attachments
        ],
        "recipient_ids": list(request.recipient_ids),
        "created_at": request.created_at.isoformat(),
        "conversation_title": request.conversation_title,
    }


def _request_from_json(data: dict[str, Any]) -> SendRequest:
    return SendRequest(
        request_id=data["request_id"],
        message_id=data["message_id"],
        conversation_id=data["conversation_id"],
        district_id=data["district_id"],
        kind=RequestKind(data["kind"]),
        sender=Sender(**data["sender"]),
        body=data["body"],
        language=data["language"],
        translations=dict(data["translations"]),
        attachments=tuple(Attachment(**a) for a in data["attachments"]),
        recipient_ids=tuple(data["recipient_ids"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        conversation_title=data.get("conversation_title"),
    )
