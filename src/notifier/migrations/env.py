"""Alembic environment: runs on the connection the caller hands over (see adapters.migrations),
or, from the alembic CLI, on a fresh async engine for NOTIFIER_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from notifier.adapters.sql.database import create_engine
from notifier.adapters.tables import metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(
        _run_with_own_engine(
            os.environ.get("NOTIFIER_DATABASE_URL", "sqlite+aiosqlite:///.local/notifier.db")
        )
    )
