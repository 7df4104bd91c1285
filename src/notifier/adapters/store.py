"""The Store port on SQLAlchemy 2 (async): SQLite (aiosqlite) embedded, PostgreSQL (asyncpg)
in production. Every method is one short transaction; none stays open across a provider call.

The delivery path's statements (a request's context, its claims, outcomes and inbox copies)
are plain SQL written once per database (``sql/``); the rest are built with SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from notifier.adapters import tables as t
from notifier.adapters.group_commit import GroupCommit
from notifier.adapters.sql import statements_for
from notifier.adapters.sql.statements import (
    DeliveryRow,
    EventRow,
    InboxRow,
    OutcomeRow,
    RequestRow,
    Triple,
)
from notifier.domain.identity import event_id_for
from notifier.domain.model import (
    Attachment,
    Channel,
    ContactPoint,
    ContactStatus,
    ConversationState,
    ConversationStatus,
    DeliveryEvent,
    DeliveryStatus,
    District,
    OutboundMessage,
    Reason,
    Recipient,
    RequestKind,
    Role,
    Route,
    Sender,
    SendRequest,
)
from notifier.ports import (
    AuditEntry,
    Claim,
    Clock,
    ContextQuery,
    DeliveryRecord,
    RequestContext,
    StoredEvent,
    StoredToken,
)

ColumnValues = RowMapping | Mapping[str, Any]
"""A row by column name, as SQLAlchemy reads it or as the driver SQL's statements (sql/) do."""


def create_engine(url: str, *, pool_size: int = 10, search_path: str | None = None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    server_settings = {"search_path": search_path} if search_path else {}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # Last in, first out: the connection just returned is the one taken next, so a
        # service at part load keeps reusing one or two warm connections. First in, first
        # out handed out the one idle longest, which is then pinged first (see below):
        # three more round trips for nearly every statement at a few requests a second.
        pool_use_lifo=True,
        connect_args={"server_settings": server_settings},
    )
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


OUTCOME_LINGER_SECONDS = 0.003
"""How long the first provider answer waits for others to share its transaction. Answers
come in one by one, a millisecond or so apart; without the wait, a service at part load
wrote nearly every answer in a transaction of its own (four round trips each). It delays
the recorded outcome, never the send."""

IDLE_BEFORE_PING_SECONDS = 1.0
"""A pooled connection unused this long is pinged before use. SQLAlchemy's pool_pre_ping
pings at every checkout: three round trips (BEGIN, a query, ROLLBACK) before every use,
a fifth of the CPU of a busy consumer, whose connections are back in use within
milliseconds. A connection that sat idle is the one a database restart may have cut."""


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_BEFORE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool's documented way to say "discard this one and take another".
        raise sa_exc.DisconnectionError(str(error)) from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer commits; the busy timeout makes concurrent
    # writers wait for the lock instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SqlStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._statements = statements_for(engine.dialect)
        # For reads that need no snapshot in common: on PostgreSQL in autocommit, since a
        # transaction would cost a BEGIN and a ROLLBACK around them (SQLite's driver begins
        # none for reads). The same pool, set apart once.
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if dialect == "postgresql"
            else engine
        )
        # The delivery path's writes, each joined with its concurrent peers into one
        # transaction (see group_commit.py).
        self._claims = GroupCommit(self._claim_many, isolates=self._isolates)
        self._outcomes = GroupCommit(
            self._record_many, isolates=self._isolates, linger_seconds=OUTCOME_LINGER_SECONDS
        )
        self._inbox_copies = GroupCommit(self._write_inbox_many, isolates=self._isolates)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def _isolates(self, error: BaseException) -> bool:
        # One item's value, or one item racing a write elsewhere: worth trying each alone.
        return self.refuses_data(error) or isinstance(error, sa_exc.IntegrityError)

    def refuses_data(self, error: BaseException) -> bool:
        if isinstance(error, sa_exc.DataError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and not error.connection_invalidated:
            # asyncpg's data exceptions (SQLSTATE class 22) reach SQLAlchemy as its generic
            # Error; class 22 is always about a value, never about the server or the link.
            sqlstate = getattr(error.orig, "sqlstate", None)
            return isinstance(sqlstate, str) and sqlstate.startswith("22")
        return False

    async def _first(self, statement: sa.Select[Any]) -> sa.Row[Any] | None:
        """The first row of a read, on a connection of its own."""
        async with self._engine.connect() as connection:
            result = await connection.execute(statement)
            row: sa.Row[Any] | None = result.first()
            return row

    async def ping(self) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    # -- directory -------------------------------------------------------------------------

    async def district(self, district_id: str) -> District | None:
        async with self._engine.connect() as connection:
            return (await self._districts(connection, [district_id])).get(district_id)

    async def recipients(self, recipient_ids: Iterable[str]) -> Mapping[str, Recipient]:
        async with self._engine.connect() as connection:
            return await self._recipients(connection, recipient_ids)

    async def contact_points(
        self, keys: Iterable[tuple[Channel, str]]
    ) -> Mapping[tuple[Channel, str], ContactPoint]:
        async with self._engine.connect() as connection:
            return await self._contact_points(connection, keys)

    async def request_contexts(self, queries: Sequence[ContextQuery]) -> list[RequestContext]:
        # One connection and four statements for a whole batch of requests: per request, a
        # connection and four statements each cost more than the rest of its reads.
        async with self._reader.connect() as connection:
            districts = await self._districts(connection, {q.district_id for q in queries})
            known = [q for q in queries if q.district_id in districts]
            profiles = await self._recipients(
                connection, (rid for q in known for rid in q.recipient_ids)
            )
            points = await self._contact_points(
                connection,
                (
                    (channel, address)
                    for profile in profiles.values()
                    for channel, address in (
                        (Channel.SMS, profile.phone),
                        (Channel.EMAIL, profile.email),
                    )
                    if address
                ),
            )
            states = await self._conversation_states(connection, {q.conversation_id for q in known})
        contexts = []
        for query in queries:
            district = districts.get(query.district_id)
            if district is None:
                contexts.append(RequestContext(None, {}, {}, None))
                continue
            mine = {rid: profiles[rid] for rid in query.recipient_ids if rid in profiles}
            contexts.append(
                RequestContext(district, mine, points, states.get(query.conversation_id))
            )
        return contexts

    async def set_contact_point(self, point: ContactPoint) -> None:
        values: dict[str, Any] = {
            "channel": point.channel.value,
            "address": point.address,
            "status": point.status.value,
            "reason": point.reason.value if point.reason else None,
            "since": point.since,
            "updated_at": self._clock.now(),
        }
        if point.status is ContactStatus.ACTIVE:
            # Back to active: a new failing period starts from nothing.
            values |= {"strikes": 0, "resume_link_sent_at": None}
        insert = self._insert(t.contact_points).values(values)
        statement = insert.on_conflict_do_update(
            index_elements=[t.contact_points.c.channel, t.contact_points.c.address],
            set_={k: insert.excluded[k] for k in values if k not in ("channel", "address")},
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def upsert_recipient(self, recipient: Recipient) -> bool:
        values = {
            "id": recipient.id,
            "district_id": recipient.district_id,
            "display_name": recipient.display_name,
            "first_name": recipient.first_name,
            "role": recipient.role.value,
            "language": recipient.language,
            "preferred_channel": recipient.preferred_channel.value
            if recipient.preferred_channel
            else None,
            "phone": recipient.phone,
            "email": recipient.email,
            "app": recipient.app,
            "updated_at": recipient.updated_at,
        }
        insert = self._insert(t.recipients).values(values)
        # Directory events can arrive out of order: only a newer profile replaces the stored one.
        statement = insert.on_conflict_do_update(
            index_elements=[t.recipients.c.id],
            set_={k: insert.excluded[k] for k in values if k != "id"},
            where=t.recipients.c.updated_at < insert.excluded.updated_at,
        ).returning(t.recipients.c.id)
        now = self._clock.now()
        async with self._engine.begin() as connection:
            applied = (await connection.execute(statement)).first() is not None
            if applied:
                addresses = [
                    {"channel": channel.value, "address": address}
                    for channel, address in (
                        (Channel.SMS, recipient.phone),
                        (Channel.EMAIL, recipient.email),
                    )
                    if address
                ]
                if addresses:
                    await connection.execute(
                        self._insert(t.contact_points)
                        .values(
                            [
                                {**a, "status": ContactStatus.ACTIVE.value, "updated_at": now}
                                for a in addresses
                            ]
                        )
                        .on_conflict_do_nothing()
                    )
        return applied

    async def delete_recipient(self, recipient_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(t.recipients).where(t.recipients.c.id == recipient_id)
            )
        return bool(result.rowcount)

    async def upsert_district(self, district: District) -> None:
        values = {
            "id": district.id,
            "name": district.name,
            "default_channel": district.default_channel.value,
            "role_channels": {role.value: ch.value for role, ch in district.role_channels.items()},
            "default_language": district.default_language,
            "languages": list(district.languages),
            "sms_label": district.sms_label,
            "max_recipients": district.max_recipients,
            "timezone": district.timezone,
            "sms_sender": district.sms_sender,
            "email_from_address": district.email_from_address,
            "email_from_name": district.email_from_name,
            "deferred_failover_minutes": district.deferred_failover_minutes,
            "sms_max_segments": district.sms_max_segments,
            "bilingual_shared_texts": district.bilingual_shared_texts,
            "reply_domain": district.reply_domain,
            "stored_at": self._clock.now(),
        }
        insert = self._insert(t.districts).values(values)
        statement = insert.on_conflict_do_update(
            index_elements=[t.districts.c.id],
            set_={k: insert.excluded[k] for k in values if k != "id"},
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def upsert_conversation_state(self, state: ConversationState) -> bool:
        """Stored unless a newer state is (events can arrive out of order)."""
        values = {
            "conversation_id": state.conversation_id,
            "status": state.status.value,
            "muted_by": sorted(state.muted_by),
            "updated_at": state.updated_at,
        }
        insert = self._insert(t.conversation_states).values(values)
        statement = insert.on_conflict_do_update(
            index_elements=[t.conversation_states.c.conversation_id],
            set_={k: insert.excluded[k] for k in values if k != "conversation_id"},
            where=t.conversation_states.c.updated_at < insert.excluded.updated_at,
        ).returning(t.conversation_states.c.conversation_id)
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).first() is not None

    async def conversation_state(self, conversation_id: str) -> ConversationState | None:
        async with self._engine.connect() as connection:
            states = await self._conversation_states(connection, [conversation_id])
        return states.get(conversation_id)

    async def delete_conversation_state(self, conversation_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(t.conversation_states).where(
                    t.conversation_states.c.conversation_id == conversation_id
                )
            )
        return bool(result.rowcount)

    async def delete_district(self, district_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(t.districts).where(t.districts.c.id == district_id)
            )
        return bool(result.rowcount)

    # -- delivery ledger -------------------------------------------------------------------

    async def claim_delivery(
        self, record: DeliveryRecord, *, inbox_copy: OutboundMessage | None = None
    ) -> Claim:
        return await self._claims.write((record, inbox_copy))

    async def _claim_many(
        self, claims: Sequence[tuple[DeliveryRecord, OutboundMessage | None]]
    ) -> list[Claim]:
        now = self._clock.now()
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
        statements = self._statements
        async with self._engine.begin() as connection:
            inserted = await statements.insert_deliveries(connection, fresh, now)
            is_new = [
                first and r.delivery_id in inserted
                for r, first in zip(records, first_copy, strict=True)
            ]
            claimed = [r for r, new in zip(records, is_new, strict=True) if new]
            if claimed:
                await statements.insert_events(
                    connection,
                    [
                        EventRow(
                            event_id_for(r.delivery_id, r.status),
                            r.delivery_id,
                            r.status.value,
                            r.reason.value if r.reason else None,
                            r.provider,
                            r.provider_message_id,
                            now,
                        )
                        for r in claimed
                    ],
                )
            copies = [
                copy
                for (_, copy), new in zip(claims, is_new, strict=True)
                if new and copy is not None
            ]
            if copies:
                await statements.insert_inbox_entries(connection, _inbox_rows(copies), now)
            earlier = [_triple(r) for r, new in zip(records, is_new, strict=True) if not new]
            found = await self._count_attempt(connection, earlier) if earlier else {}
        return [
            Claim(record=r, is_new=True) if new else Claim(record=found[_triple(r)], is_new=False)
            for r, new in zip(records, is_new, strict=True)
        ]

    async def _count_attempt(
        self, connection: AsyncConnection, triples: list[Triple]
    ) -> dict[Triple, DeliveryRecord]:
        """The deliveries claimed before, by (message, recipient, channel). No conflict
        target when claiming: the id is derived from the triple, so a racing copy may trip
        the primary key rather than the unique triple first; what was there is found by the
        triple. One still queued was claimed by an attempt that never recorded an outcome:
        it is counted (once, however many copies of it the batch holds), so a send that may
        be a duplicate is known as such."""
        rows = await self._statements.count_attempts(
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
        history = [
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
        ]
        async with self._engine.begin() as connection:
            # In order: two changes of one delivery in a batch apply as they came.
            await self._statements.apply_outcomes(connection, changes)
            await self._statements.insert_events(connection, history)
        return [None] * len(outcomes)

    async def deliveries_of_message(
        self, message_id: str, *, limit: int = 1000, offset: int = 0
    ) -> list[DeliveryRecord]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries)
                .where(t.deliveries.c.message_id == message_id)
                .order_by(t.deliveries.c.recipient_id, t.deliveries.c.channel)
                .limit(limit)
                .offset(offset)
            )
            return [_delivery_from_row(row._mapping) for row in rows]

    # -- support views ---------------------------------------------------------------------

    async def recent_deliveries(
        self,
        *,
        recipient_id: str | None = None,
        channel: Channel | None = None,
        address: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[DeliveryRecord]:
        """Newest first, for one recipient and/or one address."""
        conditions = []
        if recipient_id is not None:
            conditions.append(t.deliveries.c.recipient_id == recipient_id)
        if channel is not None and address is not None:
            conditions += [
                t.deliveries.c.channel == channel.value,
                t.deliveries.c.address == address,
            ]
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries)
                .where(*conditions)
                .order_by(t.deliveries.c.created_at.desc(), t.deliveries.c.delivery_id)
                .limit(limit)
                .offset(offset)
            )
            return [_delivery_from_row(row._mapping) for row in rows]

    async def event_history(self, delivery_ids: Iterable[str]) -> dict[str, list[StoredEvent]]:
        ids = list(dict.fromkeys(delivery_ids))
        history: dict[str, list[StoredEvent]] = {delivery_id: [] for delivery_id in ids}
        if not ids:
            return history
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.delivery_events)
                .where(t.delivery_events.c.delivery_id.in_(ids))
                .order_by(t.delivery_events.c.occurred_at, t.delivery_events.c.event_id)
            )
            for row in rows:
                history[row.delivery_id].append(
                    StoredEvent(
                        status=DeliveryStatus(row.status),
                        reason=Reason(row.reason) if row.reason else None,
                        provider=row.provider,
                        occurred_at=row.occurred_at,
                    )
                )
        return history

    async def recipients_using(self, channel: Channel, address: str) -> list[Recipient]:
        column = t.recipients.c.phone if channel is Channel.SMS else t.recipients.c.email
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.recipients).where(column == address).order_by(t.recipients.c.id)
            )
            return [_recipient_from_row(row._mapping) for row in rows]

    async def search_recipients(self, text: str, *, limit: int = 25) -> list[Recipient]:
        """By id, email or phone exactly, or by a part of the name (any case)."""
        text = text.strip()
        if not text:
            return []
        pattern = "%" + text.replace("\\", "").replace("%", "").replace("_", "") + "%"
        condition = sa.or_(
            t.recipients.c.id == text,
            t.recipients.c.email == text.lower(),
            t.recipients.c.phone == text,
            sa.func.lower(t.recipients.c.display_name).like(pattern.lower()),
        )
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.recipients)
                .where(condition)
                .order_by(t.recipients.c.display_name, t.recipients.c.id)
                .limit(limit)
            )
            return [_recipient_from_row(row._mapping) for row in rows]

    async def add_api_token(self, token: StoredToken) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.insert(t.api_tokens).values(
                    name=token.name,
                    scope=token.scope,
                    sha256=token.sha256,
                    recipient_id=token.recipient_id,
                    created_at=token.created_at,
                )
            )

    async def api_token(self, sha256: str) -> StoredToken | None:
        row = await self._first(
            sa.select(t.api_tokens).where(
                t.api_tokens.c.sha256 == sha256, t.api_tokens.c.revoked_at.is_(None)
            )
        )
        if row is None:
            return None
        return StoredToken(row.name, row.scope, row.sha256, row.recipient_id, row.created_at)

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return await self._one_delivery(t.deliveries.c.delivery_id == delivery_id)

    async def deliveries_by_provider_id(
        self, channel: Channel, provider_message_id: str
    ) -> list[DeliveryRecord]:
        """Several when one text went to a phone that several recipients share."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries)
                .where(
                    t.deliveries.c.channel == channel.value,
                    t.deliveries.c.provider_message_id == provider_message_id,
                )
                .order_by(t.deliveries.c.recipient_id)
            )
            return [_delivery_from_row(row._mapping) for row in rows]

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
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries).where(
                    c.channel == channel.value,
                    c.address == address,
                    c.sent_at.between(*sent_between),
                    c.conversation_id == conversation_id,
                )
            )
            return [_delivery_from_row(row._mapping) for row in rows]

    async def open_deliveries_to(
        self, message_id: str, channel: Channel, address: str
    ) -> list[DeliveryRecord]:
        """The message's deliveries to one address still waiting for a final status."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries).where(
                    t.deliveries.c.message_id == message_id,
                    t.deliveries.c.channel == channel.value,
                    t.deliveries.c.address == address,
                    t.deliveries.c.status.in_(
                        [DeliveryStatus.SENT.value, DeliveryStatus.DEFERRED.value]
                    ),
                )
            )
            return [_delivery_from_row(row._mapping) for row in rows]

    async def overdue_deliveries(
        self, channel: Channel, status: DeliveryStatus, sent_before: datetime, limit: int = 500
    ) -> list[DeliveryRecord]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.deliveries)
                .where(
                    t.deliveries.c.channel == channel.value,
                    t.deliveries.c.status == status.value,
                    t.deliveries.c.sent_at < sent_before,
                )
                .order_by(t.deliveries.c.sent_at)
                .limit(limit)
            )
            return [_delivery_from_row(row._mapping) for row in rows]

    async def _one_delivery(self, *conditions: Any, order_by: Any = None) -> DeliveryRecord | None:
        statement = sa.select(t.deliveries).where(*conditions).limit(1)
        if order_by is not None:
            statement = statement.order_by(order_by)
        row = await self._first(statement)
        return None if row is None else _delivery_from_row(row._mapping)

    async def save_requests(self, requests: Sequence[SendRequest]) -> None:
        """Keep each request (the first of its message), so a later failover can send the
        same message again. One statement for the batch."""
        rows = [RequestRow(r.message_id, _request_to_json(r)) for r in requests]
        async with self._engine.begin() as connection:
            await self._statements.insert_requests(connection, rows, self._clock.now())

    async def load_request(self, message_id: str) -> SendRequest | None:
        row = await self._first(
            sa.select(t.send_requests.c.payload).where(t.send_requests.c.message_id == message_id)
        )
        return None if row is None else _request_from_json(row.payload)

    async def cached_translation(self, message_id: str, language: str) -> str | None:
        row = await self._first(
            sa.select(t.translations.c.text).where(
                t.translations.c.message_id == message_id,
                t.translations.c.language == language,
            )
        )
        return None if row is None else str(row.text)

    async def save_translation(
        self, message_id: str, language: str, text: str, provider: str
    ) -> None:
        statement = (
            self._insert(t.translations)
            .values(
                message_id=message_id,
                language=language,
                text=text,
                provider=provider,
                created_at=self._clock.now(),
            )
            .on_conflict_do_nothing()
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def provider_event_seen(self, provider: str, event_key: str) -> bool:
        row = await self._first(
            sa.select(t.provider_events.c.event_key).where(
                t.provider_events.c.provider == provider,
                t.provider_events.c.event_key == event_key,
            )
        )
        return row is not None

    async def remember_provider_event(self, provider: str, event_key: str) -> None:
        statement = (
            self._insert(t.provider_events)
            .values(provider=provider, event_key=event_key[:200], seen_at=self._clock.now())
            .on_conflict_do_nothing()
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def contact_point_counts(self) -> dict[tuple[Channel, ContactStatus], int]:
        statement = sa.select(
            t.contact_points.c.channel, t.contact_points.c.status, sa.func.count()
        ).group_by(t.contact_points.c.channel, t.contact_points.c.status)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return {(Channel(channel), ContactStatus(status)): count for channel, status, count in rows}

    async def add_strike(self, channel: Channel, address: str) -> int:
        """Count one more failure against the address; returns the new count."""
        async with self._engine.begin() as connection:
            await connection.execute(
                self._insert(t.contact_points)
                .values(
                    channel=channel.value,
                    address=address,
                    status=ContactStatus.ACTIVE.value,
                    updated_at=self._clock.now(),
                )
                .on_conflict_do_nothing()
            )
            row = (
                await connection.execute(
                    sa.update(t.contact_points)
                    .where(
                        t.contact_points.c.channel == channel.value,
                        t.contact_points.c.address == address,
                    )
                    .values(strikes=t.contact_points.c.strikes + 1)
                    .returning(t.contact_points.c.strikes)
                )
            ).one()
        return int(row.strikes)

    async def mark_resume_link_sent(self, address: str) -> bool:
        """True the first time for this failing period: only the first fallback SMS carries
        the resume link."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.update(t.contact_points)
                .where(
                    t.contact_points.c.channel == Channel.EMAIL.value,
                    t.contact_points.c.address == address,
                    t.contact_points.c.resume_link_sent_at.is_(None),
                )
                .values(resume_link_sent_at=self._clock.now())
            )
        return bool(result.rowcount)

    async def append_audit(self, entry: AuditEntry) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
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
        """Newest first."""
        statement = sa.select(t.audit_log).order_by(t.audit_log.c.id.desc())
        if address is not None:
            statement = statement.where(t.audit_log.c.address == address)
        async with self._engine.connect() as connection:
            rows = await connection.execute(statement.limit(limit).offset(offset))
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

    # -- app inbox and sandbox -------------------------------------------------------------

    async def write_inbox(self, message: OutboundMessage) -> str:
        return await self._inbox_copies.write(message)

    async def _write_inbox_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        rows = _inbox_rows(messages)
        async with self._engine.begin() as connection:
            await self._statements.insert_inbox_entries(connection, rows, self._clock.now())
        return [message.delivery_id for message in messages]

    async def inbox(self, recipient_id: str) -> list[Mapping[str, Any]]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.app_inbox)
                .where(t.app_inbox.c.recipient_id == recipient_id)
                .order_by(t.app_inbox.c.created_at)
            )
            return [dict(row._mapping) for row in rows]

    async def record_sandbox_send(self, message: OutboundMessage) -> int:
        if message.sms is not None:
            subject, body, html = None, message.sms.body, None
        elif message.email is not None:
            subject, body, html = message.email.subject, message.email.text, message.email.html
        else:
            raise ValueError("the sandbox records SMS and email only")
        statement = (
            self._insert(t.sandbox_outbox)
            .values(
                delivery_id=message.delivery_id,
                channel=message.channel.value,
                to_address=message.to,
                from_address=message.sender_address,
                subject=subject,
                body=body,
                html=html,
                language=message.language,
                created_at=self._clock.now(),
            )
            .on_conflict_do_nothing()
            .returning(t.sandbox_outbox.c.id)
        )
        async with self._engine.begin() as connection:
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
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(t.sandbox_outbox).order_by(t.sandbox_outbox.c.id)
            )
            return [dict(row._mapping) for row in rows]

    # -- the request's context, read by driver SQL (sql/) ----------------------------------

    async def _districts(
        self, connection: AsyncConnection, district_ids: Iterable[str]
    ) -> Mapping[str, District]:
        ids = list(dict.fromkeys(district_ids))
        rows = await self._statements.districts(connection, ids) if ids else []
        return {row["id"]: _district_from_row(row) for row in rows}

    async def _recipients(
        self, connection: AsyncConnection, recipient_ids: Iterable[str]
    ) -> Mapping[str, Recipient]:
        ids = list(dict.fromkeys(recipient_ids))
        rows = await self._statements.recipients(connection, ids) if ids else []
        return {row["id"]: _recipient_from_row(row) for row in rows}

    async def _contact_points(
        self, connection: AsyncConnection, keys: Iterable[tuple[Channel, str]]
    ) -> Mapping[tuple[Channel, str], ContactPoint]:
        wanted = list(dict.fromkeys((channel.value, address) for channel, address in keys))
        rows = await self._statements.contact_points(connection, wanted) if wanted else []
        points = (_contact_point_from_row(row) for row in rows)
        return {(point.channel, point.address): point for point in points}

    async def _conversation_states(
        self, connection: AsyncConnection, conversation_ids: Iterable[str]
    ) -> Mapping[str, ConversationState]:
        ids = list(dict.fromkeys(conversation_ids))
        rows = await self._statements.conversation_states(connection, ids) if ids else []
        states = (_conversation_state_from_row(row) for row in rows)
        return {state.conversation_id: state for state in states}


def _triple(record: DeliveryRecord) -> Triple:
    return (record.message_id, record.recipient_id, record.channel.value)


def _inbox_rows(messages: Sequence[OutboundMessage]) -> list[InboxRow]:
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


def _district_from_row(row: ColumnValues) -> District:
    return District(
        id=row["id"],
        name=row["name"],
        default_channel=Channel(row["default_channel"]),
        role_channels={Role(r): Channel(c) for r, c in row["role_channels"].items()},
        default_language=row["default_language"],
        languages=tuple(row["languages"]),
        sms_label=row["sms_label"],
        max_recipients=row["max_recipients"],
        timezone=row["timezone"],
        sms_sender=row["sms_sender"],
        email_from_address=row["email_from_address"],
        email_from_name=row["email_from_name"],
        deferred_failover_minutes=row["deferred_failover_minutes"],
        sms_max_segments=row["sms_max_segments"] or 3,
        bilingual_shared_texts=bool(row["bilingual_shared_texts"]),
        reply_domain=row["reply_domain"],
    )


def _contact_point_from_row(row: ColumnValues) -> ContactPoint:
    return ContactPoint(
        channel=Channel(row["channel"]),
        address=row["address"],
        status=ContactStatus(row["status"]),
        reason=Reason(row["reason"]) if row["reason"] else None,
        since=row["since"],
        strikes=row["strikes"],
    )


def _conversation_state_from_row(row: ColumnValues) -> ConversationState:
    return ConversationState(
        conversation_id=row["conversation_id"],
        status=ConversationStatus(row["status"]),
        muted_by=frozenset(row["muted_by"]),
        updated_at=row["updated_at"],
    )


def _recipient_from_row(row: ColumnValues) -> Recipient:
    return Recipient(
        id=row["id"],
        district_id=row["district_id"],
        display_name=row["display_name"],
        first_name=row["first_name"],
        role=Role(row["role"]),
        language=row["language"],
        preferred_channel=Channel(row["preferred_channel"]) if row["preferred_channel"] else None,
        phone=row["phone"],
        email=row["email"],
        app=row["app"],
        updated_at=row["updated_at"],
    )


def _request_to_json(request: SendRequest) -> dict[str, Any]:
    data = dataclasses.asdict(request)
    data["created_at"] = request.created_at.isoformat()
    return data


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
