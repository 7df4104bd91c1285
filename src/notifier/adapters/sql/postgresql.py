"""The hot statements on PostgreSQL through asyncpg.

SQLAlchemy's asyncpg dialect hands driver SQL to asyncpg as it is (paramstyle
``numeric_dollar``): ``$1`` placeholders, each statement prepared once per connection and then
found in asyncpg's statement cache. A batch of rows is one array per column, turned back into
rows by ``unnest``: one statement, whatever the batch's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection, Dialect

from notifier.adapters import tables as t
from notifier.adapters.sql.statements import (
    JSON,
    TIME,
    DeliveryRow,
    EventRow,
    InboxRow,
    OutcomeRow,
    RequestRow,
    Row,
    TableReader,
    Triple,
    binding,
    value_binder,
)

INSERT_DELIVERIES = """
INSERT INTO deliveries (
    delivery_id, request_id, message_id, conversation_id, recipient_id, channel, address,
    status, reason, route, fallback_from, language, provider, provider_message_id,
    district_id, sent_at, created_at, updated_at
)
SELECT d.*, $17::timestamptz, $17::timestamptz
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
    $15::text[], $16::timestamptz[]
) AS d
ON CONFLICT DO NOTHING
RETURNING delivery_id
"""

COUNT_ATTEMPTS = """
UPDATE deliveries SET attempts = attempts + 1
WHERE (message_id, recipient_id, channel) IN (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
)
AND status = $4
"""

SELECT_DELIVERIES = """
SELECT
    delivery_id, request_id, message_id, conversation_id, recipient_id, channel, address,
    status, reason, route, fallback_from, language, provider, provider_message_id,
    district_id, sent_at, created_at, updated_at, attempts
FROM deliveries
WHERE (message_id, recipient_id, channel) IN (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
)
"""

INSERT_EVENTS = """
INSERT INTO delivery_events (
    event_id, delivery_id, status, reason, provider, provider_message_id, occurred_at
)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::timestamptz[]
)
ON CONFLICT DO NOTHING
"""

INSERT_INBOX_ENTRIES = """
INSERT INTO app_inbox (
    entry_id, recipient_id, message_id, conversation_id, sender_name, body, language,
    created_at
)
SELECT e.*, $8::timestamptz
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]
) AS e
ON CONFLICT DO NOTHING
"""

APPLY_OUTCOMES = """
UPDATE deliveries AS d SET
    status = b.status,
    reason = b.reason,
    updated_at = b.occurred_at,
    provider = coalesce(b.provider, d.provider),
    provider_message_id = coalesce(b.provider_message_id, d.provider_message_id),
    sent_at = coalesce(b.sent_at, d.sent_at),
    sms_segments = coalesce(b.sms_segments, d.sms_segments),
    sms_encoding = coalesce(b.sms_encoding, d.sms_encoding)
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
    $7::timestamptz[], $8::integer[], $9::text[]
) AS b(
    delivery_id, status, reason, occurred_at, provider, provider_message_id, sent_at,
    sms_segments, sms_encoding
)
WHERE d.delivery_id = b.delivery_id
"""

INSERT_REQUESTS = """
INSERT INTO send_requests (message_id, payload, stored_at)
SELECT r.message_id, r.payload::json, $3::timestamptz
FROM unnest($1::text[], $2::text[]) AS r(message_id, payload)
ON CONFLICT DO NOTHING
"""

SELECT_DISTRICTS = """
SELECT
    id, name, default_channel, role_channels, default_language, languages, sms_label,
    max_recipients, timezone, sms_sender, email_from_address, email_from_name,
    deferred_failover_minutes, sms_max_segments, bilingual_shared_texts, reply_domain
FROM districts WHERE id = ANY($1::text[])
"""

SELECT_RECIPIENTS = """
SELECT
    id, district_id, display_name, first_name, role, language, preferred_channel, phone,
    email, app, updated_at
FROM recipients WHERE id = ANY($1::text[])
"""

SELECT_CONTACT_POINTS = """
SELECT channel, address, status, reason, since, strikes
FROM contact_points
WHERE (channel, address) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

SELECT_CONVERSATION_STATES = """
SELECT conversation_id, status, muted_by, updated_at
FROM conversation_states WHERE conversation_id = ANY($1::text[])
"""


class PostgresqlStatements:
    def __init__(self, dialect: Dialect) -> None:
        self._time = value_binder(TIME, dialect)
        self._json = value_binder(JSON, dialect)
        self._deliveries = TableReader(t.deliveries, dialect)
        self._districts = TableReader(t.districts, dialect)
        self._recipients = TableReader(t.recipients, dialect)
        self._contact_points = TableReader(t.contact_points, dialect)
        self._conversation_states = TableReader(t.conversation_states, dialect)

    def insert_deliveries(
        self, connection: Connection, rows: Sequence[DeliveryRow], now: datetime
    ) -> set[str]:
        if not rows:
            return set()
        with binding(INSERT_DELIVERIES):
            *columns, sent_at = zip(*rows, strict=True)
            parameters = (*columns, [self._time(v) for v in sent_at], self._time(now))
        result = connection.exec_driver_sql(INSERT_DELIVERIES, parameters)
        return set(result.scalars())

    def count_attempts(
        self, connection: Connection, triples: Sequence[Triple], queued: str
    ) -> list[Row]:
        if not triples:
            return []
        columns = tuple(zip(*triples, strict=True))
        connection.exec_driver_sql(COUNT_ATTEMPTS, (*columns, queued))
        # A statement of its own: it sees what a concurrent claim committed meanwhile, as
        # the update did.
        result = connection.exec_driver_sql(SELECT_DELIVERIES, columns)
        return self._deliveries.rows(result)

    def insert_events(self, connection: Connection, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        with binding(INSERT_EVENTS):
            *columns, occurred_at = zip(*rows, strict=True)
            parameters = (*columns, [self._time(v) for v in occurred_at])
        connection.exec_driver_sql(INSERT_EVENTS, parameters)

    def insert_inbox_entries(
        self, connection: Connection, rows: Sequence[InboxRow], created_at: datetime
    ) -> None:
        if not rows:
            return
        with binding(INSERT_INBOX_ENTRIES):
            parameters = (*zip(*rows, strict=True), self._time(created_at))
        connection.exec_driver_sql(INSERT_INBOX_ENTRIES, parameters)

    def apply_outcomes(self, connection: Connection, rows: Sequence[OutcomeRow]) -> int:
        # One UPDATE … FROM changes a row once even when the batch names it twice (and which
        # change wins is undefined): a delivery's second change goes in a statement after its
        # first.
        changed = 0
        for round_ in _rounds(rows):
            with binding(APPLY_OUTCOMES):
                (
                    ids,
                    statuses,
                    reasons,
                    occurred_at,
                    providers,
                    provider_ids,
                    sent_at,
                    segments,
                    encodings,
                ) = zip(*round_, strict=True)
                parameters = (
                    ids,
                    statuses,
                    reasons,
                    [self._time(v) for v in occurred_at],
                    providers,
                    provider_ids,
                    [self._time(v) for v in sent_at],
                    segments,
                    encodings,
                )
            changed += connection.exec_driver_sql(APPLY_OUTCOMES, parameters).rowcount
        return changed

    def insert_requests(
        self, connection: Connection, rows: Sequence[RequestRow], stored_at: datetime
    ) -> None:
        if not rows:
            return
        with binding(INSERT_REQUESTS):
            parameters = (
                [row.message_id for row in rows],
                [self._json(row.payload) for row in rows],
                self._time(stored_at),
            )
        connection.exec_driver_sql(INSERT_REQUESTS, parameters)

    def districts(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        if not ids:
            return []
        result = connection.exec_driver_sql(SELECT_DISTRICTS, (ids,))
        return self._districts.rows(result)

    def recipients(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        if not ids:
            return []
        result = connection.exec_driver_sql(SELECT_RECIPIENTS, (ids,))
        return self._recipients.rows(result)

    def contact_points(self, connection: Connection, keys: Sequence[tuple[str, str]]) -> list[Row]:
        if not keys:
            return []
        result = connection.exec_driver_sql(SELECT_CONTACT_POINTS, tuple(zip(*keys, strict=True)))
        return self._contact_points.rows(result)

    def conversation_states(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        if not ids:
            return []
        result = connection.exec_driver_sql(SELECT_CONVERSATION_STATES, (ids,))
        return self._conversation_states.rows(result)


def _rounds(rows: Sequence[OutcomeRow]) -> list[list[OutcomeRow]]:
    """The rows split so that no delivery is in one round twice, each delivery's changes in
    successive rounds in their order: nearly always a single round."""
    rounds: list[list[OutcomeRow]] = []
    seen: dict[str, int] = {}
    for row in rows:
        index = seen.get(row.delivery_id, 0)
        seen[row.delivery_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(row)
    return rounds
