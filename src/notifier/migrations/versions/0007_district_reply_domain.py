"""district reply domain

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("districts", sa.Column("reply_domain", sa.String(length=253), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("districts") as batch:
        batch.drop_column("reply_domain")
