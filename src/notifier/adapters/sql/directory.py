"""The ``Directory`` and ``DirectoryUpdates`` ports: districts, recipients and conversations'
states as the directory topics last said. A request's context is read by driver SQL
(``Statements``); the rest is built with SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from notifier.adapters import tables as t
from notifier.adapters.sql.contact_points import read_contact_points
from notifier.adapters.sql.database import ColumnValues, Database
from notifier.domain.model import (
    Channel,
    ContactStatus,
    ConversationState,
    ConversationStatus,
    District,
    Recipient,
    Role,
)
from notifier.domain.records import ContextQuery, RequestContext


class SqlDirectory:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def district(self, district_id: str) -> District | None:
        districts = await self._db.reading(lambda c: self._districts(c, [district_id]))
        return districts.get(district_id)

    async def recipients(self, recipient_ids: Iterable[str]) -> Mapping[str, Recipient]:
        ids = list(recipient_ids)
        return await self._db.reading(lambda connection: self._recipients(connection, ids))

    async def conversation_state(self, conversation_id: str) -> ConversationState | None:
        states = await self._db.reading(lambda c: self._conversation_states(c, [conversation_id]))
        return states.get(conversation_id)

    async def request_contexts(self, queries: Sequence[ContextQuery]) -> list[RequestContext]:
        # One connection and four statements for a whole batch of requests: per request, a
        # connection and four statements each cost more than the rest of its reads.
        return await self._db.reading(lambda connection: self._contexts(connection, queries))

    def _contexts(
        self, connection: Connection, queries: Sequence[ContextQuery]
    ) -> list[RequestContext]:
        districts = self._districts(connection, {q.district_id for q in queries})
        known = [q for q in queries if q.district_id in districts]
        profiles = self._recipients(connection, (rid for q in known for rid in q.recipient_ids))
        points = read_contact_points(
            self._db.statements,
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
        states = self._conversation_states(connection, {q.conversation_id for q in known})
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

    async def recipients_using(self, channel: Channel, address: str) -> list[Recipient]:
        column = t.recipients.c.phone if channel is Channel.SMS else t.recipients.c.email
        rows = await self._db.rows(
            sa.select(t.recipients).where(column == address).order_by(t.recipients.c.id)
        )
        return [_recipient_from_row(row._mapping) for row in rows]

    async def search_recipients(self, text: str, *, limit: int = 25) -> list[Recipient]:
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
        rows = await self._db.rows(
            sa.select(t.recipients)
            .where(condition)
            .order_by(t.recipients.c.display_name, t.recipients.c.id)
            .limit(limit)
        )
        return [_recipient_from_row(row._mapping) for row in rows]

    # -- DirectoryUpdates ------------------------------------------------------------------

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
        # Directory events can arrive out of order: only a newer profile replaces the stored one.
        statement = self._db.upsert(
            t.recipients, values, key=("id",), newer_by="updated_at"
        ).returning(t.recipients.c.id)
        now = self._db.clock.now()
        async with self._db.engine.begin() as connection:
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
                        self._db.insert(t.contact_points)
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
        result = await self._db.write(
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
            "stored_at": self._db.clock.now(),
        }
        await self._db.write(self._db.upsert(t.districts, values, key=("id",)))

    async def delete_district(self, district_id: str) -> bool:
        result = await self._db.write(sa.delete(t.districts).where(t.districts.c.id == district_id))
        return bool(result.rowcount)

    async def upsert_conversation_state(self, state: ConversationState) -> bool:
        values = {
            "conversation_id": state.conversation_id,
            "status": state.status.value,
            "muted_by": sorted(state.muted_by),
            "updated_at": state.updated_at,
        }
        statement = self._db.upsert(
            t.conversation_states, values, key=("conversation_id",), newer_by="updated_at"
        ).returning(t.conversation_states.c.conversation_id)
        return (await self._db.write(statement)).first() is not None

    async def delete_conversation_state(self, conversation_id: str) -> bool:
        result = await self._db.write(
            sa.delete(t.conversation_states).where(
                t.conversation_states.c.conversation_id == conversation_id
            )
        )
        return bool(result.rowcount)

    # -- read by driver SQL (sql/), on the caller's connection --------------------------------

    def _districts(
        self, connection: Connection, district_ids: Iterable[str]
    ) -> Mapping[str, District]:
        ids = list(dict.fromkeys(district_ids))
        rows = self._db.statements.districts(connection, ids) if ids else []
        return {row["id"]: _district_from_row(row) for row in rows}

    def _recipients(
        self, connection: Connection, recipient_ids: Iterable[str]
    ) -> Mapping[str, Recipient]:
        ids = list(dict.fromkeys(recipient_ids))
        rows = self._db.statements.recipients(connection, ids) if ids else []
        return {row["id"]: _recipient_from_row(row) for row in rows}

    def _conversation_states(
        self, connection: Connection, conversation_ids: Iterable[str]
    ) -> Mapping[str, ConversationState]:
        ids = list(dict.fromkeys(conversation_ids))
        rows = self._db.statements.conversation_states(connection, ids) if ids else []
        states = (_conversation_state_from_row(row) for row in rows)
        return {state.conversation_id: state for state in states}


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
