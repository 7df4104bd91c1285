"""The hot statements on SQLite through aiosqlite (``?`` placeholders, as sqlite3 takes them).

SQLite has no arrays. A write that returns nothing is one ``executemany`` (sqlite3 steps the
one prepared statement through the rows in C, in their order). A write or read that returns
rows is a statement over rows of placeholders, one per power-of-two run of the batch
(``SizedStatement``). Not ``json_each()`` over one JSON parameter:
SQLite's JSON functions cut a string at U+0000, which SQLite's text holds, and which must
come back as it went in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy.engine import Connection, Dialect

from notifier.adapters import tables as t
from notifier.adapters.sql.statements import (
    JSON,
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

MAX_PARAMETERS = 32_766
"""SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32 (RETURNING, which the store needs,
came in 3.35)."""


class SizedStatement:
    """A statement over n rows of placeholders, n a power of two, its text built the first
    time n is seen.

    Why powers of two: sqlite3 keeps each connection's prepared statements (128 by default),
    and a statement over hundreds of rows is a program of hundreds of kilobytes. One text per
    batch size kept about a megabyte per size seen on every pooled connection, a hundred
    megabytes of RSS after a flood; the statements were prepared again as sizes came and
    went. Runs of powers of two make at most fifteen texts per statement, prepared once, for
    a few more statements per batch (one per set bit of its size).
    """

    def __init__(self, head: str, row: str, tail: str = "", *, others: int = 0) -> None:
        """``others``: how many parameters the statement takes besides the rows'."""
        self._head = head
        self._row = row
        self._tail = tail
        fitting = (MAX_PARAMETERS - others) // row.count("?")
        self.max_rows = 1 << (fitting.bit_length() - 1)
        self._texts: dict[int, str] = {}

    def text(self, rows: int) -> str:
        text = self._texts.get(rows)
        if text is None:
            text = self._texts[rows] = self._head + ", ".join([self._row] * rows) + self._tail
        return text

    def chunks(self, rows: Sequence[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
        """The statement for each run of rows, largest first, each a power of two long."""
        start = 0
        while (left := len(rows) - start) > 0:
            size = min(self.max_rows, 1 << (left.bit_length() - 1))
            yield self.text(size), rows[start : start + size]
            start += size


INSERT_EVENTS = """
INSERT INTO delivery_events (
    event_id, delivery_id, status, reason, provider, provider_message_id, occurred_at
)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

INSERT_INBOX_ENTRIES = """
INSERT INTO app_inbox (
    entry_id, recipient_id, message_id, conversation_id, sender_name, body, language,
    created_at
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

APPLY_OUTCOMES = """
UPDATE deliveries SET
    status = ?2,
    reason = ?3,
    updated_at = ?4,
    provider = coalesce(?5, provider),
    provider_message_id = coalesce(?6, provider_message_id),
    sent_at = coalesce(?7, sent_at),
    sms_segments = coalesce(?8, sms_segments),
    sms_encoding = coalesce(?9, sms_encoding)
WHERE delivery_id = ?1
"""

INSERT_REQUESTS = """
INSERT INTO send_requests (message_id, payload, stored_at) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING
"""


def sqlite_time(value: datetime | None) -> str | None:
    """A time as ``tables.UtcDateTime`` stores it on SQLite (its UTC wall time as text,
    SQLAlchemy's default DATETIME format), by datetime's own C formatting: several times are
    bound per delivery, and SQLAlchemy's binder (a type decorator, then a format string over
    a dict of parts) was a tenth of the SQLite thread's time."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is UTC:
        # The clock's own times: their text less its "+00:00", in half the time of
        # converting them to naive first (2 µs a time on this machine, bound several
        # times a delivery).
        return value.isoformat(" ", "microseconds")[:-6]
    if zone is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class RepeatedTimes:
    """``sqlite_time``, answering again at once for the time it was given last: a batch's
    rows mostly carry one moment (a claim's events, its "now"), the same object each time."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[datetime | None, str | None] = (None, None)

    def __call__(self, value: datetime | None) -> str | None:
        # One tuple, read and replaced whole: safe from the hot path's thread as well.
        last = self._last
        if value is last[0]:
            return last[1]
        text = sqlite_time(value)
        self._last = (value, text)
        return text


class SqliteStatements:
    def __init__(self, dialect: Dialect) -> None:
        self._insert_deliveries = SizedStatement(
            "INSERT INTO deliveries ("
            "delivery_id, request_id, message_id, conversation_id, recipient_id, channel, address, "
            "status, reason, route, fallback_from, language, provider, provider_message_id, "
            "district_id, sent_at, created_at, updated_at"
            ") VALUES ",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            " ON CONFLICT DO NOTHING RETURNING delivery_id",
        )
        # Rows by several columns are found by a join with the wanted rows, not by
        # "(a, b) IN (VALUES …)": SQLite answers that by scanning the whole table. CROSS JOIN
        # makes the few wanted rows the outer loop, each then one search of the index.
        self._count_attempts = SizedStatement(
            "UPDATE deliveries SET attempts = attempts + 1 FROM (VALUES ",
            "(?, ?, ?)",
            ") AS w WHERE deliveries.message_id = w.column1 AND deliveries.recipient_id = "
            "w.column2 AND deliveries.channel = w.column3 AND deliveries.status = ?",
            others=1,
        )
        self._select_deliveries = SizedStatement(
            "SELECT "
            "d.delivery_id, d.request_id, d.message_id, d.conversation_id, d.recipient_id, "
            "d.channel, d.address, d.status, d.reason, d.route, d.fallback_from, d.language, "
            "d.provider, d.provider_message_id, d.district_id, d.sent_at, d.created_at, "
            "d.updated_at, d.attempts "
            "FROM (VALUES ",
            "(?, ?, ?)",
            ") AS w CROSS JOIN deliveries AS d WHERE d.message_id = w.column1 "
            "AND d.recipient_id = w.column2 AND d.channel = w.column3",
        )
        self._select_recipients = SizedStatement(
            "SELECT "
            "id, district_id, display_name, first_name, role, language, preferred_channel, phone, "
            "email, app, updated_at "
            "FROM recipients WHERE id IN (",
            "?",
            ")",
        )
        self._select_districts = SizedStatement(
            "SELECT "
            "id, name, default_channel, role_channels, default_language, languages, sms_label, "
            "max_recipients, timezone, sms_sender, email_from_address, email_from_name, "
            "deferred_failover_minutes, sms_max_segments, bilingual_shared_texts, reply_domain "
            "FROM districts WHERE id IN (",
            "?",
            ")",
        )
        self._select_conversation_states = SizedStatement(
            "SELECT conversation_id, status, muted_by, updated_at "
            "FROM conversation_states WHERE conversation_id IN (",
            "?",
            ")",
        )
        self._select_contact_points = SizedStatement(
            "SELECT c.channel, c.address, c.status, c.reason, c.since, c.strikes FROM (VALUES ",
            "(?, ?)",
            ") AS k CROSS JOIN contact_points AS c "
            "WHERE c.channel = k.column1 AND c.address = k.column2",
        )
        self._time = RepeatedTimes()
        self._json = value_binder(JSON, dialect)
        self._deliveries = TableReader(t.deliveries, dialect)
        self._districts = TableReader(t.districts, dialect)
        self._recipients = TableReader(t.recipients, dialect)
        self._contact_points = TableReader(t.contact_points, dialect)
        self._conversation_states = TableReader(t.conversation_states, dialect)

    def insert_deliveries(
        self, connection: Connection, rows: Sequence[DeliveryRow], now: datetime
    ) -> set[str]:
        inserted: set[str] = set()
        for statement, chunk in self._insert_deliveries.chunks(rows):
            with binding(statement):
                created = self._time(now)
                parameters = tuple(
                    chain.from_iterable(
                        (*row[:-1], self._time(row.sent_at), created, created) for row in chunk
                    )
                )
            result = connection.exec_driver_sql(statement, parameters)
            inserted.update(result.scalars())
        return inserted

    def count_attempts(
        self, connection: Connection, triples: Sequence[Triple], queued: str
    ) -> list[Row]:
        for statement, chunk in self._count_attempts.chunks(triples):
            connection.exec_driver_sql(statement, (*chain.from_iterable(chunk), queued))
        found: list[Row] = []
        for statement, chunk in self._select_deliveries.chunks(triples):
            result = connection.exec_driver_sql(statement, tuple(chain.from_iterable(chunk)))
            found += self._deliveries.rows(result)
        return found

    def insert_events(self, connection: Connection, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        with binding(INSERT_EVENTS):
            parameters = [(*row[:-1], self._time(row.occurred_at)) for row in rows]
        connection.exec_driver_sql(INSERT_EVENTS, parameters)

    def insert_inbox_entries(
        self, connection: Connection, rows: Sequence[InboxRow], created_at: datetime
    ) -> None:
        if not rows:
            return
        with binding(INSERT_INBOX_ENTRIES):
            created = self._time(created_at)
            parameters = [(*row, created) for row in rows]
        connection.exec_driver_sql(INSERT_INBOX_ENTRIES, parameters)

    def apply_outcomes(self, connection: Connection, rows: Sequence[OutcomeRow]) -> int:
        if not rows:
            return 0
        with binding(APPLY_OUTCOMES):
            parameters = [
                (
                    row.delivery_id,
                    row.status,
                    row.reason,
                    self._time(row.occurred_at),
                    row.provider,
                    row.provider_message_id,
                    self._time(row.sent_at),
                    row.sms_segments,
                    row.sms_encoding,
                )
                for row in rows
            ]
        # sqlite3 sums an executemany's changes over its rows.
        return connection.exec_driver_sql(APPLY_OUTCOMES, parameters).rowcount

    def insert_requests(
        self, connection: Connection, rows: Sequence[RequestRow], stored_at: datetime
    ) -> None:
        if not rows:
            return
        with binding(INSERT_REQUESTS):
            stored = self._time(stored_at)
            parameters = [(row.message_id, self._json(row.payload), stored) for row in rows]
        connection.exec_driver_sql(INSERT_REQUESTS, parameters)

    def districts(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        found: list[Row] = []
        for statement, chunk in self._select_districts.chunks(ids):
            result = connection.exec_driver_sql(statement, tuple(chunk))
            found += self._districts.rows(result)
        return found

    def recipients(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        found: list[Row] = []
        for statement, chunk in self._select_recipients.chunks(ids):
            result = connection.exec_driver_sql(statement, tuple(chunk))
            found += self._recipients.rows(result)
        return found

    def contact_points(self, connection: Connection, keys: Sequence[tuple[str, str]]) -> list[Row]:
        found: list[Row] = []
        for statement, chunk in self._select_contact_points.chunks(keys):
            result = connection.exec_driver_sql(statement, tuple(chain.from_iterable(chunk)))
            found += self._contact_points.rows(result)
        return found

    def conversation_states(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        found: list[Row] = []
        for statement, chunk in self._select_conversation_states.chunks(ids):
            result = connection.exec_driver_sql(statement, tuple(chunk))
            found += self._conversation_states.rows(result)
        return found
