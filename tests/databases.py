"""A fresh database per running service, on either backend, for the tests that start the
whole service (which takes a plain database URL, so each gets a database of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import postgres_url

Backend = Literal["sqlite", "postgresql"]


@asynccontextmanager
async def fresh_database(tmp_path: Path, backend: Backend, prefix: str = "t") -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file in ``tmp_path``, or a new database on
    the test PostgreSQL server (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
        return
    server = postgres_url()
    if server is None:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set (make test starts PostgreSQL)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server_engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with server_engine.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            async with server_engine.connect() as connection:
                await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await server_engine.dispose()
