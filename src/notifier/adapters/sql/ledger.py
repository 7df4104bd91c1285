"""The ``DeliveryLedger`` and ``DeliveryHistory`` ports: deliveries and their events. The
delivery path's writes (claims, outcomes) are driver SQL (``Statements``), each joined with
its concurrent peers into one transaction (``group_commit.py``); the reads are built with
SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from notifier.adapters import tables as t
from notifier.adapters.group_commit import GroupCommit
from notifier.adapters.sql.database import ColumnValues, Database
from notifier.adapters.sql.inbox import inbox_rows
from notifier.adapters.sql.statements import DeliveryRow, EventRow, OutcomeRow, Triple
from notifier.domain.history import delivery_history, is_told_by_row
from notifier.domain.model import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    Reason,
    Route,
)
from notifier.domain.records import Claim, DeliveryRecord, StoredEvent
from notifier.ports import UnknownDeliveryError

OUTCOME_LINGER_SECONDS = 0.003
"""How long the first provider answer waits for others to share its transaction. Answers
come in one by one, a millisecond or so apart; without the wait, a service at part load
wrote nearly every answer in a transaction of its own (four round trips each). It delays
the recorded outcome, never the send."""


class SqlLedger:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._claims = GroupCommit(self._claim_many, isolates=database.isolates)
        self._outcomes = GroupCommit(
            self._record_many, isolates=database.isolates, linger_seconds=OUTCOME_LINGER_SECONDS
        )

    # -- DeliveryLedger --------------------------------------------------------------------

    async def claim_delivery(
        self, record: DeliveryRecord, *, inbox_copy: OutboundMessage | None = None
    ) -> Claim:
        return await self._claims.write((record, inbox_copy))

    async def claim_deliveries(
        self, claims: Sequence[tuple[DeliveryRecord, OutboundMessage | None]]
    ) -> list[Claim]:
        return await self._claims.write_all(claims)

    async def _claim_many(
        self, claims: Sequence[tuple[DeliveryRecord, OutboundMessage | None]]
    ) -> list[Claim]:
        now = self._db.clock.now()
        records = [record for record, _ in claims]
        # A delivery twice in one batch (never from one process's concurrent work, which
        # waits for the first copy) is claimed by its first copy and found by the second,
        # as two transactions one after the other would do.
        seen: set[str] = set()
        first_copy = []
        for record in records:
            first_copy.append(record.delivery_id not in seen)
            seen.add(record.delivery_id)
        fresh = [_delivery_row(r) for r, first in zip(records, first_copy, strict=True) if first]
        statements = self._db.statements

        def claim(connection: Connection) -> list[Claim]:
            inserted = statements.insert_deliveries(connection, fresh, now)
            is_new = [
                first and r.delivery_id in inserted
                for r, first in zip(records, first_copy, strict=True)
            ]
            copies = [
                copy
                for (_, copy), new in zip(claims, is_new, strict=True)
                if new and copy is not None
            ]
            if copies:
                statements.insert_inbox_entries(connection, inbox_rows(copies), now)
            earlier = [_triple(r) for r, new in zip(records, is_new, strict=True) if not new]
            found = self._count_attempt(connection, earlier) if earlier else {}
            return [
                Claim(record=r, is_new=True)
                if new
                else Claim(record=found[_triple(r)], is_new=False)
                for r, new in zip(records, is_new, strict=True)
            ]

        return await self._db.in_transaction(claim)

    def _count_attempt(
        self, connection: Connection, triples: list[Triple]
    ) -> dict[Triple, DeliveryRecord]:
        """The deliveries claimed before, by (message, recipient, channel). No conflict
        target when claiming: the id is derived from the triple, so a racing copy may trip
        the primary key rather than the unique triple first; what was there is found by the
        triple. One still queued was claimed by an attempt that never recorded an outcome:
        it is counted (once, however many copies of it the batch holds), so a send that may
        be a duplicate is known as such."""
        rows = self._db.statements.count_attempts(
            connection, list(dict.fromkeys(triples)), DeliveryStatus.QUEUED.value
        )
        found = (_delivery_from_row(row) for row in rows)
        return {_triple(record): record for record in found}

    async def record_event(
        self, event: DeliveryEvent, *, sms_cost: tuple[int, str] | None = None
    ) -> None:
        await self._outcomes.write((event, sms_cost))

    async def _record_many(
        self, outcomes: Sequence[tuple[DeliveryEvent, tuple[int, str] | None]]
    ) -> list[None]:
        changes = [_outcome_row(event, cost) for event, cost in outcomes]
        # A send is its row's sent_at and provider (history.py): not kept twice.
        kept = [
            EventRow(
                event.event_id,
                event.delivery_id,
                event.status.value,
                event.reason.value if event.reason else None,
                event.provider,
                event.provider_message_id,
                event.occurred_at,
            )
            for event, _ in outcomes
            if not is_told_by_row(event.status)
        ]
        statements = self._db.statements

        def record(connection: Connection) -> None:
            # In order: two changes of one delivery in a batch apply as they came.
            changed = statements.apply_outcomes(connection, changes)
            if changed < len(changes):
                # Tried again each alone (database.isolates): only that one fails.
                raise UnknownDeliveryError(
                    f"{len(changes) - changed} of {len(changes)} outcomes of no claimed delivery"
                )
            statements.insert_events(connection, kept)

        await self._db.in_transaction(record)
        return [None] * len(outcomes)

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return await self._one_delivery(t.deliveries.c.delivery_id == delivery_id)

    async def deliveries_by_provider_id(
        self, channel: Channel, provider_message_id: str
    ) -> list[DeliveryRecord]:
        return await self._deliveries(
            sa.select(t.deliveries)
            .where(
                t.deliveries.c.channel == channel.value,
                t.deliveries.c.provider_message_id == provider_message_id,
            )
            .order_by(t.deliveries.c.recipient_id)
        )

    async def deliveries_of_message(
        self, message_id: str, *, limit: int = 1000, offset: int = 0
    ) -> list[DeliveryRecord]:
        return await self._deliveries(
            sa.select(t.deliveries)
            .where(t.deliveries.c.message_id == message_id)
            .order_by(t.deliveries.c.recipient_id, t.deliveries.c.channel)
            .limit(limit)
            .offset(offset)
        )

    # -- DeliveryHistory -------------------------------------------------------------------

    async def latest_delivery_to(
        self, channel: Channel, address: str, not_after: datetime
    ) -> DeliveryRecord | None:
        return await self._one_delivery(
            t.deliveries.c.channel == channel.value,
            t.deliveries.c.address == address,
            t.deliveries.c.sent_at <= not_after,
            order_by=t.deliveries.c.sent_at.desc(),
        )

    async def conversation_deliveries_to(
        self,
        channel: Channel,
        address: str,
        conversation_id: str,
        sent_between: tuple[datetime, datetime],
    ) -> list[DeliveryRecord]:
        c = t.deliveries.c
        return await self._deliveries(
            sa.select(t.deliveries).where(
                c.channel == channel.value,
                c.address == address,
                c.sent_at.between(*sent_between),
                c.conversation_id == conversation_id,
            )
        )

    async def open_deliveries_to(
        self, message_id: str, channel: Channel, address: str
    ) -> list[DeliveryRecord]:
        return await self._deliveries(
            sa.select(t.deliveries).where(
                t.deliveries.c.message_id == message_id,
                t.deliveries.c.channel == channel.value,
                t.deliveries.c.address == address,
                t.deliveries.c.status.in_(
                    [DeliveryStatus.SENT.value, DeliveryStatus.DEFERRED.value]
                ),
            )
        )

    async def overdue_deliveries(
        self, channel: Channel, status: DeliveryStatus, sent_before: datetime, limit: int = 500
    ) -> list[DeliveryRecord]:
        return await self._deliveries(
            sa.select(t.deliveries)
            .where(
                t.deliveries.c.channel == channel.value,
                t.deliveries.c.status == status.value,
                t.deliveries.c.sent_at < sent_before,
                # The partial index's own condition, word for word (no parameter): so both
                # planners may use it. Inbox copies, without an address, are never overdue.
                t.deliveries.c.address.is_not(None),
            )
            .order_by(t.deliveries.c.sent_at)
            .limit(limit)
        )

    async def recent_deliveries(
        self,
        *,
        recipient_id: str | None = None,
        channel: Channel | None = None,
        address: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[DeliveryRecord]:
        conditions = []
        if recipient_id is not None:
            conditions.append(t.deliveries.c.recipient_id == recipient_id)
        if channel is not None and address is not None:
            conditions += [
                t.deliveries.c.channel == channel.value,
                t.deliveries.c.address == address,
            ]
        return await self._deliveries(
            sa.select(t.deliveries)
            .where(*conditions)
            .order_by(t.deliveries.c.created_at.desc(), t.deliveries.c.delivery_id)
            .limit(limit)
            .offset(offset)
        )

    async def event_history(
        self, records: Iterable[DeliveryRecord]
    ) -> dict[str, list[StoredEvent]]:
        by_id = {record.delivery_id: record for record in records}
        kept: dict[str, list[StoredEvent]] = {delivery_id: [] for delivery_id in by_id}
        if by_id:
            rows = await self._db.rows(
                sa.select(t.delivery_events)
                .where(t.delivery_events.c.delivery_id.in_(list(by_id)))
                .order_by(t.delivery_events.c.occurred_at, t.delivery_events.c.event_id)
            )
            for row in rows:
                kept[row.delivery_id].append(
                    StoredEvent(
                        status=DeliveryStatus(row.status),
                        reason=Reason(row.reason) if row.reason else None,
                        provider=row.provider,
                        occurred_at=row.occurred_at,
                    )
                )
        return {
            delivery_id: delivery_history(record, kept[delivery_id])
            for delivery_id, record in by_id.items()
        }

    async def _deliveries(self, statement: sa.Select[Any]) -> list[DeliveryRecord]:
        return [_delivery_from_row(row._mapping) for row in await self._db.rows(statement)]

    async def _one_delivery(self, *conditions: Any, order_by: Any = None) -> DeliveryRecord | None:
        statement = sa.select(t.deliveries).where(*conditions).limit(1)
        if order_by is not None:
            statement = statement.order_by(order_by)
        row = await self._db.first(statement)
        return None if row is None else _delivery_from_row(row._mapping)


def _triple(record: DeliveryRecord) -> Triple:
    return (record.message_id, record.recipient_id, record.channel.value)


def _delivery_row(record: DeliveryRecord) -> DeliveryRow:
    return DeliveryRow(
        record.delivery_id,
        record.request_id,
        record.message_id,
        record.conversation_id,
        record.recipient_id,
        record.channel.value,
        record.address,
        record.status.value,
        record.reason.value if record.reason else None,
        record.route.value if record.route else None,
        record.fallback_from.value if record.fallback_from else None,
        record.language,
        record.provider,
        record.provider_message_id,
        record.district_id,
        record.sent_at,
    )


def _outcome_row(event: DeliveryEvent, sms_cost: tuple[int, str] | None) -> OutcomeRow:
    """The change an outcome makes, the same for every outcome: a report from the provider
    (delivered, bounced) names no provider of its own to overwrite what the send recorded,
    and only a send sets sent_at and what the text cost (the columns left None keep their
    value)."""
    return OutcomeRow(
        event.delivery_id,
        event.status.value,
        event.reason.value if event.reason else None,
        event.occurred_at,
        event.provider,
        event.provider_message_id,
        event.occurred_at if event.status is DeliveryStatus.SENT else None,
        sms_cost[0] if sms_cost else None,
        sms_cost[1] if sms_cost else None,
    )


def _delivery_from_row(row: ColumnValues) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row["delivery_id"],
        request_id=row["request_id"],
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        recipient_id=row["recipient_id"],
        channel=Channel(row["channel"]),
        address=row["address"],
        status=DeliveryStatus(row["status"]),
        reason=Reason(row["reason"]) if row["reason"] else None,
        route=Route(row["route"]) if row["route"] else None,
        fallback_from=Channel(row["fallback_from"]) if row["fallback_from"] else None,
        language=row["language"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        district_id=row["district_id"],
        sent_at=row["sent_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempts=row["attempts"],
    )
