"""inbox keyed by recipient and message

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 18:00:00

An inbox entry had a primary key on ``entry_id`` and a unique constraint on
``(recipient_id, message_id)``: two indexes for one fact, since the entry's id is derived
from the pair (it is the inbox copy's delivery id). The pair becomes the primary key and the
id an ordinary column: every inbox copy (one or more per message sent) is one B-tree insert
less on the delivery path.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "entry_id, recipient_id, message_id, conversation_id, sender_name, body, language, "
    "created_at, read_at"
)
_PAIR = ("recipient_id", "message_id")
_UNIQUE_PAIR = "uq_app_inbox_recipient_message"


def _rebuild_on_sqlite(*, by_recipient: bool) -> None:
    # SQLite changes no primary key in place: a new table, the rows copied, the old one
    # dropped (no table refers to this one).
    keys: list[sa.Constraint] = (
        [sa.PrimaryKeyConstraint(*_PAIR)]
        if by_recipient
        else [sa.PrimaryKeyConstraint("entry_id"), sa.UniqueConstraint(*_PAIR, name=_UNIQUE_PAIR)]
    )
    op.create_table(
        "app_inbox_rebuilt",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("sender_name", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        *keys,
    )
    op.execute(
        f"INSERT INTO app_inbox_rebuilt ({_COLUMNS}) "  # noqa: S608 (constants)
        f"SELECT {_COLUMNS} FROM app_inbox"
    )
    op.drop_table("app_inbox")
    op.rename_table("app_inbox_rebuilt", "app_inbox")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(by_recipient=True)
        return
    op.drop_constraint(_UNIQUE_PAIR, "app_inbox", type_="unique")
    op.drop_constraint("app_inbox_pkey", "app_inbox", type_="primary")
    op.create_primary_key("app_inbox_pkey", "app_inbox", list(_PAIR))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(by_recipient=False)
        return
    op.drop_constraint("app_inbox_pkey", "app_inbox", type_="primary")
    op.create_primary_key("app_inbox_pkey", "app_inbox", ["entry_id"])
    op.create_unique_constraint(_UNIQUE_PAIR, "app_inbox", list(_PAIR))
