"""lighter delivery path indexes: events keyed by delivery, partial address and provider-id indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 17:40:00

Every text or email writes three or more delivery events and, with its inbox copies, two or
more deliveries rows. On SQLite an event was three B-tree inserts (its rowid row, the primary
key on ``event_id``, the index on ``delivery_id``); keyed by ``(delivery_id, event_id)`` in a
table without rowid it is one, and the separate ``delivery_id`` index goes on both
databases. The ``address`` and ``provider_message_id`` indexes leave out the rows without
one (inbox copies, and texts or emails not yet sent): every lookup through them compares the
column with a value. The ``(status, sent_at)`` index, for the overdue scan of texts and
emails, leaves out the rows without an address (inbox copies).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENT_COLUMNS = "event_id, delivery_id, status, reason, provider, provider_message_id, occurred_at"


def _events_table(name: str, *, by_delivery: bool) -> None:
    key = ("delivery_id", "event_id") if by_delivery else ("event_id",)
    op.create_table(
        name,
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.delivery_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=not by_delivery,
    )


def _rebuild_events_on_sqlite(*, by_delivery: bool) -> None:
    # SQLite changes neither a primary key nor rowid-ness in place: a new table, the rows
    # copied, the old one dropped (no table refers to this one).
    _events_table("delivery_events_rebuilt", by_delivery=by_delivery)
    op.execute(
        f"INSERT INTO delivery_events_rebuilt ({_EVENT_COLUMNS}) "  # noqa: S608 (constants)
        f"SELECT {_EVENT_COLUMNS} FROM delivery_events"
    )
    op.drop_table("delivery_events")
    op.rename_table("delivery_events_rebuilt", "delivery_events")


def _recreate_deliveries_indexes(*, partial: bool) -> None:
    for name, columns, column in (
        ("ix_deliveries_address_sent", ["channel", "address", "sent_at"], "address"),
        ("ix_deliveries_status_sent", ["status", "sent_at"], "address"),
        ("ix_deliveries_provider_message_id", ["provider_message_id"], "provider_message_id"),
    ):
        op.drop_index(name, table_name="deliveries")
        where = sa.text(f"{column} IS NOT NULL") if partial else None
        op.create_index(name, "deliveries", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_events_on_sqlite(by_delivery=True)
    else:
        op.drop_index("ix_delivery_events_delivery_id", table_name="delivery_events")
        op.drop_constraint("delivery_events_pkey", "delivery_events", type_="primary")
        op.create_primary_key(
            "delivery_events_pkey", "delivery_events", ["delivery_id", "event_id"]
        )
    _recreate_deliveries_indexes(partial=True)


def downgrade() -> None:
    _recreate_deliveries_indexes(partial=False)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_events_on_sqlite(by_delivery=False)
    else:
        op.drop_constraint("delivery_events_pkey", "delivery_events", type_="primary")
        op.create_primary_key("delivery_events_pkey", "delivery_events", ["event_id"])
    op.create_index("ix_delivery_events_delivery_id", "delivery_events", ["delivery_id"])
