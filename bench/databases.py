"""A fresh, empty database for each scenario: a SQLite file in the run's directory, or the
PostgreSQL database ``notifier_bench`` (dropped and created again; never the test suite's
``notifier_test``). notifier migrates it itself at start, as in production."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

BENCH_DATABASE = "notifier_bench"


@dataclass(frozen=True, slots=True)
class Database:
    kind: str
    url: str
    """The SQLAlchemy URL notifier is given."""
    version: str


async def fresh_database(kind: str, run_dir: Path, label: str, postgres_url: str) -> Database:
    if kind == "sqlite":
        return _sqlite_file(run_dir, label)
    async with _admin(postgres_url) as connection:
        # FORCE: a notifier killed mid-run may still hold connections.
        await connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
        version = await connection.fetchval("SHOW server_version")
    url = make_url(postgres_url).set(database=BENCH_DATABASE)
    return Database(kind, url.render_as_string(hide_password=False), f"PostgreSQL {version}")


def _sqlite_file(run_dir: Path, label: str) -> Database:
    path = run_dir / f"{label}.db"
    for stale in run_dir.glob(f"{label}.db*"):
        stale.unlink()
    return Database("sqlite", f"sqlite+aiosqlite:///{path}", f"SQLite {sqlite3.sqlite_version}")


async def drop_database(database: Database, postgres_url: str) -> None:
    if database.kind == "postgresql":
        async with _admin(postgres_url) as connection:
            await connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')


@asynccontextmanager
async def _admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the server's ``postgres`` database."""
    url = make_url(postgres_url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        yield connection
    finally:
        await connection.close()
