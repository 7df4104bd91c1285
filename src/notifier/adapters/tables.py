"""The database schema as SQLAlchemy Core tables (the migrations create the same)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite keeps no zone, PostgreSQL converts."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = sa.MetaData()

districts = sa.Table(
    "districts",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("default_channel", sa.String(16), nullable=False),
    sa.Column("role_channels", sa.JSON, nullable=False),
    sa.Column("default_language", sa.String(35), nullable=False),
    sa.Column("languages", sa.JSON, nullable=False),
    sa.Column("sms_label", sa.Boolean, nullable=False),
    sa.Column("max_recipients", sa.Integer, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("sms_sender", sa.String(64)),
    sa.Column("email_from_address", sa.String(320)),
    sa.Column("email_from_name", sa.Text),
    sa.Column("deferred_failover_minutes", sa.Integer),
    sa.Column("sms_max_segments", sa.Integer),
    sa.Column("bilingual_shared_texts", sa.Boolean),
    sa.Column("reply_domain", sa.String(253)),
    sa.Column("stored_at", UtcDateTime, nullable=False),
)

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("district_id", sa.String(128), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("first_name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("language", sa.String(35)),
    sa.Column("preferred_channel", sa.String(16)),
    sa.Column("phone", sa.String(32), index=True),
    sa.Column("email", sa.String(320), index=True),
    sa.Column("app", sa.Boolean, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

contact_points = sa.Table(
    "contact_points",
    metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("since", UtcDateTime),
    sa.Column("strikes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("resume_link_sent_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("message_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(128), nullable=False),
    sa.Column("recipient_id", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(320)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("route", sa.String(40)),
    sa.Column("fallback_from", sa.String(16)),
    sa.Column("language", sa.String(35)),
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(128)),
    sa.Column("district_id", sa.String(128)),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("sms_segments", sa.Integer),
    sa.Column("sms_encoding", sa.String(8)),
    # Sends started: more than 1 means an earlier attempt died with its outcome unknown.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "message_id", "recipient_id", "channel", name="uq_deliveries_message_recipient_channel"
    ),
    sa.Index("ix_deliveries_recipient_created", "recipient_id", "created_at"),
    # Partial: an inbox copy (half the rows) has neither an address nor a provider's id, and
    # every lookup by either compares it with a value, which no NULL matches; the overdue
    # scan by status says "address IS NOT NULL" itself (ledger.overdue_deliveries), since
    # only texts and emails fall overdue. Each index a row skips is one B-tree insert less
    # on the delivery path.
    sa.Index(
        "ix_deliveries_address_sent",
        "channel",
        "address",
        "sent_at",
        sqlite_where=sa.text("address IS NOT NULL"),
        postgresql_where=sa.text("address IS NOT NULL"),
    ),
    sa.Index(
        "ix_deliveries_provider_message_id",
        "provider_message_id",
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_deliveries_status_sent",
        "status",
        "sent_at",
        sqlite_where=sa.text("address IS NOT NULL"),
        postgresql_where=sa.text("address IS NOT NULL"),
    ),
)

send_requests = sa.Table(
    "send_requests",
    metadata,
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("stored_at", UtcDateTime, nullable=False),
)

provider_events = sa.Table(
    "provider_events",
    metadata,
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("event_key", sa.String(200), primary_key=True),
    sa.Column("seen_at", UtcDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16)),
    sa.Column("address", sa.String(320)),
    sa.Column("note", sa.Text),
    sa.Column("request_id", sa.String(64)),
    sa.Column("outcome", sa.Text),
)

delivery_events = sa.Table(
    "delivery_events",
    metadata,
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column(
        "delivery_id",
        sa.String(36),
        sa.ForeignKey("deliveries.delivery_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(128)),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    # A delivery's events are read together, by delivery: keyed by it first, and on SQLite
    # stored in that key's B-tree (no rowid), each event is one B-tree insert instead of
    # three (rows, event id, delivery id) — three or more per text or email. An event's id
    # is derived from its delivery's (identity.event_id_for), so the pair is as unique as
    # the id alone was.
    sa.PrimaryKeyConstraint("delivery_id", "event_id"),
    sqlite_with_rowid=False,
)

app_inbox = sa.Table(
    "app_inbox",
    metadata,
    sa.Column("entry_id", sa.String(36), nullable=False),
    sa.Column("recipient_id", sa.String(128), nullable=False),
    sa.Column("message_id", sa.String(128), nullable=False),
    sa.Column("conversation_id", sa.String(128), nullable=False),
    sa.Column("sender_name", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("language", sa.String(35), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime),
    # Keyed by what the app reads it by, a recipient's entries. The entry's id is derived
    # from the pair (identity.delivery_id_for, the inbox copy's delivery), so it needs no
    # index of its own to stay unique: one B-tree insert less for every inbox copy.
    sa.PrimaryKeyConstraint("recipient_id", "message_id"),
)

sandbox_outbox = sa.Table(
    "sandbox_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(36), nullable=False, unique=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("to_address", sa.String(320), nullable=False),
    sa.Column("from_address", sa.String(320)),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("language", sa.String(35), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("recipient_id", sa.String(128)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)

sa.Index("ix_recipients_display_name", recipients.c.display_name)
sa.Index("ix_audit_log_address", audit_log.c.address)

translations = sa.Table(
    "translations",
    metadata,
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("language", sa.String(35), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

conversation_states = sa.Table(
    "conversation_states",
    metadata,
    sa.Column("conversation_id", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("muted_by", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
