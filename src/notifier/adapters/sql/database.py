"""The one database every store adapter (``sql/``) writes to: its engine, set up per backend,
and what the adapters share on it — the dialect's statements, its ``INSERT ... ON CONFLICT``,
the autocommit reader, and the reading of its errors. Every adapter method is one short
transaction; none stays open across a provider call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from notifier.adapters.sql import statements_for
from notifier.ports import Clock

ResultT = TypeVar("ResultT")

ColumnValues = RowMapping | Mapping[str, Any]
"""A row by column name, as SQLAlchemy reads it or as the driver SQL's statements (sql/) do."""

IDLE_BEFORE_PING_SECONDS = 1.0
"""A pooled connection unused this long is pinged before use. SQLAlchemy's pool_pre_ping
pings at every checkout: three round trips (BEGIN, a query, ROLLBACK) before every use,
a fifth of the CPU of a busy consumer, whose connections are back in use within
milliseconds. A connection that sat idle is the one a database restart may have cut."""


SQLITE_BUSY_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for another's lock before failing "database is locked"."""


def _is_sqlite_file(url: sa.URL) -> bool:
    database = url.database
    return url.get_backend_name() == "sqlite" and bool(database) and database != ":memory:"


def create_engine(url: str, *, pool_size: int = 10, search_path: str | None = None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if _is_sqlite_file(parsed):
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    server_settings = {"search_path": search_path} if search_path else {}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # Last in, first out: the connection just returned is the one taken next, so a
        # service at part load keeps reusing one or two warm connections. First in, first
        # out handed out the one idle longest, which is then pinged first (see below):
        # three more round trips for nearly every statement at a few requests a second.
        pool_use_lifo=True,
        connect_args={"server_settings": server_settings},
    )
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_BEFORE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool's documented way to say "discard this one and take another".
        raise sa_exc.DisconnectionError(str(error)) from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer commits; the busy timeout makes concurrent
    # writers wait for the lock instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SqliteHotPath:
    """The delivery path's SQLite transactions, each run whole on one thread of its own
    through the standard driver (pysqlite), in one hop from the event loop.

    Through aiosqlite every statement is three or four hops to its connection's thread and
    back (a cursor, the execute, the fetch, the close), each a wake-up of both threads and
    a hand-over of the GIL: a claim's few statements cost 1.6 ms of CPU that way against
    0.35 ms run together on one thread (the same statements; measured on this machine).
    One thread is enough: SQLite has one writer at a time, and these transactions take a
    millisecond or less. The other reads and writes stay on the async engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = sa.create_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            # Used by the one thread below only, but closed from the loop's at dispose.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        event.listen(self._engine, "connect", _sqlite_pragmas)
        # Disposed with the engine it stands beside: its connection is released with theirs.
        event.listen(engine.sync_engine, "engine_disposed", self._dispose)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-hot-path")

    def _dispose(self, _engine: Engine) -> None:
        self._engine.dispose()

    async def run(self, work: Callable[[Connection], ResultT], *, write: bool) -> ResultT:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run, work, write)

    def _run(self, work: Callable[[Connection], ResultT], write: bool) -> ResultT:
        if write:
            with self._engine.begin() as connection:
                return work(connection)
        with self._engine.connect() as connection:
            return work(connection)


class Database:
    """The ``DatabaseHealth`` port, and the engine the store adapters share."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        dialect = engine.dialect.name
        # In memory, a second engine would open another, empty database.
        self._sqlite_hot_path = SqliteHotPath(engine) if _is_sqlite_file(engine.url) else None
        self.insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        """The dialect's INSERT, which has ON CONFLICT (the same on both databases)."""
        self.statements = statements_for(engine.dialect)
        # For reads that need no snapshot in common: on PostgreSQL in autocommit, since a
        # transaction would cost a BEGIN and a ROLLBACK around them (SQLite's driver begins
        # none for reads). The same pool, set apart once.
        self.reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if dialect == "postgresql"
            else engine
        )

    async def in_transaction(self, work: Callable[[Connection], ResultT]) -> ResultT:
        """``work`` (the delivery path's driver SQL, ``Statements``) in one transaction."""
        if self._sqlite_hot_path is not None:
            return await self._sqlite_hot_path.run(work, write=True)
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    async def reading(self, work: Callable[[Connection], ResultT]) -> ResultT:
        """``work``'s reads (driver SQL) on one connection, with no snapshot in common
        (``reader``)."""
        if self._sqlite_hot_path is not None:
            return await self._sqlite_hot_path.run(work, write=False)
        async with self.reader.connect() as connection:
            return await connection.run_sync(work)

    def upsert(
        self,
        table: sa.Table,
        values: Mapping[str, Any],
        *,
        key: Sequence[str],
        newer_by: str | None = None,
    ) -> Any:
        """Insert the row, or overwrite every other given column of the row with this key;
        with ``newer_by`` (a column), only a row older by it is overwritten."""
        insert = self.insert(table).values(values)
        return insert.on_conflict_do_update(
            index_elements=[table.c[column] for column in key],
            set_={k: insert.excluded[k] for k in values if k not in key},
            where=None if newer_by is None else table.c[newer_by] < insert.excluded[newer_by],
        )

    def isolates(self, error: BaseException) -> bool:
        """For a group commit: one item's value, or one item racing a write elsewhere, is
        worth trying each alone."""
        return self.refuses_data(error) or isinstance(error, sa_exc.IntegrityError)

    def refuses_data(self, error: BaseException) -> bool:
        if isinstance(error, sa_exc.DataError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and not error.connection_invalidated:
            # asyncpg's data exceptions (SQLSTATE class 22) reach SQLAlchemy as its generic
            # Error; class 22 is always about a value, never about the server or the link.
            sqlstate = getattr(error.orig, "sqlstate", None)
            return isinstance(sqlstate, str) and sqlstate.startswith("22")
        return False

    async def first(self, statement: sa.Select[Any]) -> sa.Row[Any] | None:
        """The first row of a read, on a connection of its own."""
        async with self.engine.connect() as connection:
            result = await connection.execute(statement)
            row: sa.Row[Any] | None = result.first()
            return row

    async def rows(self, statement: sa.Select[Any]) -> list[sa.Row[Any]]:
        """Every row of a read, on a connection of its own."""
        async with self.engine.connect() as connection:
            return list(await connection.execute(statement))

    async def write(self, statement: sa.Executable) -> sa.CursorResult[Any]:
        """One statement in a transaction of its own."""
        async with self.engine.begin() as connection:
            return await connection.execute(statement)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
