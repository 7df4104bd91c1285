"""What every database's hot statements take and give back, and the column types' conversions
they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, CursorResult, Dialect

from notifier.adapters import tables as t

Row = Mapping[str, Any]
"""A row by column name, its values as SQLAlchemy would read them from the table."""

Triple = tuple[str, str, str]
"""A delivery by (message_id, recipient_id, channel)."""


class DeliveryRow(NamedTuple):
    """A claimed delivery's columns, in the order the claim statements list them."""

    delivery_id: str
    request_id: str
    message_id: str
    conversation_id: str
    recipient_id: str
    channel: str
    address: str | None
    status: str
    reason: str | None
    route: str | None
    fallback_from: str | None
    language: str | None
    provider: str | None
    provider_message_id: str | None
    district_id: str | None
    sent_at: datetime | None


class EventRow(NamedTuple):
    event_id: str
    delivery_id: str
    status: str
    reason: str | None
    provider: str | None
    provider_message_id: str | None
    occurred_at: datetime


class InboxRow(NamedTuple):
    entry_id: str
    recipient_id: str
    message_id: str
    conversation_id: str
    sender_name: str
    body: str
    language: str


class OutcomeRow(NamedTuple):
    """One change of a delivery. The columns given as None keep what the delivery holds."""

    delivery_id: str
    status: str
    reason: str | None
    occurred_at: datetime
    provider: str | None
    provider_message_id: str | None
    sent_at: datetime | None
    sms_segments: int | None
    sms_encoding: str | None


class RequestRow(NamedTuple):
    message_id: str
    payload: Mapping[str, Any]


class Statements(Protocol):
    """Each method runs on the caller's connection, in its transaction: synchronous, inside
    a ``Database.in_transaction`` or ``Database.reading``."""

    def insert_deliveries(
        self, connection: Connection, rows: Sequence[DeliveryRow], now: datetime
    ) -> set[str]:
        """Inserts the deliveries not there yet (by id or by triple), created and updated
        ``now``; returns the ids of those inserted. No id may appear twice."""
        ...

    def count_attempts(
        self, connection: Connection, triples: Sequence[Triple], queued: str
    ) -> list[Row]:
        """Adds one to the attempts of those still ``queued``, then reads them all."""
        ...

    def insert_events(self, connection: Connection, rows: Sequence[EventRow]) -> None:
        """Inserts the events not there yet."""
        ...

    def insert_inbox_entries(
        self, connection: Connection, rows: Sequence[InboxRow], created_at: datetime
    ) -> None:
        """Inserts the entries not there yet (by id or by recipient and message)."""
        ...

    def apply_outcomes(self, connection: Connection, rows: Sequence[OutcomeRow]) -> int:
        """Applies each change in order: two changes of one delivery apply one after the
        other. Returns how many changes found their delivery."""
        ...

    def insert_requests(
        self, connection: Connection, rows: Sequence[RequestRow], stored_at: datetime
    ) -> None:
        """Keeps the first request of each message."""
        ...

    def districts(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        """Those of the (distinct) ids that are known."""
        ...

    def recipients(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        """Those of the (distinct) ids that are known."""
        ...

    def contact_points(self, connection: Connection, keys: Sequence[tuple[str, str]]) -> list[Row]:
        """Those of the (distinct) (channel, address) keys that are known."""
        ...

    def conversation_states(self, connection: Connection, ids: Sequence[str]) -> list[Row]:
        """Those of the (distinct) conversation ids that have a state."""
        ...


def value_binder(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy hands the driver for a value of this column type on this dialect:
    ``tables.UtcDateTime`` refuses a naive time and gives UTC (on SQLite, as its text),
    JSON gives its text."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        raise ValueError(f"{type_!r} is bound as it is on {dialect.name}: no binder needed")
    return process


class TableReader:
    """Driver rows of one table read as SQLAlchemy reads them: each value through its column
    type's result processor on the dialect (on SQLite times are text, JSON is text and
    booleans are integers; asyncpg decodes them itself, and its times are UTC already)."""

    def __init__(self, table: sa.Table, dialect: Dialect) -> None:
        self._processors = {
            column.name: process
            for column in table.columns
            if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
        }

    def rows(self, result: CursorResult[Any]) -> list[Row]:
        names = tuple(result.keys())
        plan = [
            (index, self._processors[name])
            for index, name in enumerate(names)
            if name in self._processors
        ]
        rows: list[Row] = []
        for row in result:
            values = list(row)
            for index, process in plan:
                values[index] = process(values[index])
            rows.append(dict(zip(names, values, strict=True)))
        return rows

    def first(self, result: CursorResult[Any]) -> Row | None:
        rows = self.rows(result)
        return rows[0] if rows else None


@contextmanager
def binding(statement: str) -> Iterator[None]:
    """Refuses a value a column type refuses (a naive time) as SQLAlchemy does when it binds
    one: a StatementError naming the statement, before anything is sent."""
    try:
        yield
    except (ValueError, TypeError) as error:
        message = f"({type(error).__module__}.{type(error).__name__}) {error}"
        raise sa_exc.StatementError(message, statement, None, error) from error


TIME = t.UtcDateTime()
JSON = sa.JSON()
