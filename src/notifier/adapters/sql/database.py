"""The one database every store adapter (``sql/``) writes to: its engine, set up per backend,
and what the adapters share on it — the dialect's statements, its ``INSERT ... ON CONFLICT``,
the autocommit reader, and the reading of its errors. Every adapter method is one short
transaction; none stays open across a provider call."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
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
from notifier.ports import Clock, UnknownDeliveryError

ResultT = TypeVar("ResultT")

log = logging.getLogger(__name__)

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
    _set_pragmas(dbapi_connection, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_SECONDS * 1000)


def _set_pragmas(dbapi_connection: Any, *, busy_timeout_ms: int, checkpoints: bool = True) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    if not checkpoints:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _inline_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Never wait on the loop: a lock held by another connection fails at once (the work then
    # waits on the thread), and the checkpoint's copying and fsync happen on the thread too.
    _set_pragmas(dbapi_connection, busy_timeout_ms=0, checkpoints=False)


def _is_locked(error: sa_exc.OperationalError) -> bool:
    # The extended code (SQLITE_BUSY_RECOVERY, …) carries the primary one in its low byte.
    code = getattr(error.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _BUSY_CODES


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

CHECKPOINT_INTERVAL_SECONDS = 1.0
"""How often, at most, the WAL written by the delivery path is copied back into the
database file (PASSIVE checkpoints: they wait for no writer or reader; see SqliteHotPath)."""


class SqliteHotPath:
    """The delivery path's SQLite transactions, each run whole through the standard driver
    (pysqlite), on the event loop itself when it can go at once, else on a thread.

    Through aiosqlite every statement is three or four hops to its connection's thread and
    back (a cursor, the execute, the fetch, the close), each a wake-up of both threads and
    a hand-over of the GIL: a claim's few statements cost 1.6 ms of CPU that way against
    0.35 ms run together on one thread (the same statements; measured on this machine).
    Even that one hop per transaction passed the GIL between the loop and the thread
    hundreds of times a second, so a transaction runs on the loop: SQLite has one writer at
    a time, and these transactions take a millisecond or less (short benchmark runs
    alternating the two: 854–1,070 deliveries/s at 0.89–1.08 ms of CPU each on the loop,
    883–895/s at 1.02–1.05 ms through the thread).

    What must never happen on the loop is waiting: a lock held by another connection (the
    async engine's writers — directory, webhooks, API — which need the loop to finish) would
    stall everything for the busy timeout. So the loop's connection waits for nothing: a
    transaction that finds the lock taken fails at its first write, having written nothing
    (each ``work`` computes and returns, touching nothing outside its connection), and is
    run again on the thread, with the full timeout, on a connection of its own; the calls
    that come while one waits there queue behind it.

    The WAL's checkpoints (copying, fsync) run on the thread too, every
    ``checkpoint_interval`` seconds while the loop writes, and the loop's transactions
    queue behind the end of each one like behind a waiting one: a checkpoint copies only
    the frames written before it began, and the WAL starts again from its beginning only
    after one has copied them all. With the loop writing on during checkpoints, none ever
    did, and the WAL grew by gigabytes in minutes (a 20 s flood writes some 30,000 frames a
    second), each lookup in it slower.
    """

    def __init__(
        self, engine: AsyncEngine, *, checkpoint_interval: float = CHECKPOINT_INTERVAL_SECONDS
    ) -> None:
        url = engine.url.set(drivername="sqlite+pysqlite")
        # Each pool's one connection is used by one thread at a time, but all are closed
        # from the loop's at dispose.
        self._inline_engine = sa.create_engine(
            url,
            connect_args={"timeout": 0, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        event.listen(self._inline_engine, "connect", _inline_pragmas)
        self._engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        event.listen(self._engine, "connect", _sqlite_pragmas)
        # Disposed with the engine it stands beside: its connections are released with theirs.
        event.listen(engine.sync_engine, "engine_disposed", self._dispose)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-hot-path")
        self._on_thread = 0
        self._checkpoint_interval = checkpoint_interval
        self._last_checkpoint = time.monotonic()
        self._checkpointing = False
        self._unchecked = False
        self._disposed = False

    def _dispose(self, _engine: Engine) -> None:
        self._disposed = True
        self._inline_engine.dispose()
        self._engine.dispose()

    async def run(self, work: Callable[[Connection], ResultT], *, write: bool) -> ResultT:
        loop = asyncio.get_running_loop()
        if not self._on_thread:
            try:
                result = self._run(self._inline_engine, work, write)
            except sa_exc.OperationalError as error:
                if not _is_locked(error):
                    raise
                log.debug(
                    "SQLite lock taken by another connection: the transaction waits on the thread"
                )
            else:
                if write:
                    self._wrote(loop)
                return result
        self._on_thread += 1
        try:
            result = await loop.run_in_executor(self._thread, self._run, self._engine, work, write)
        finally:
            self._on_thread -= 1
        if write:
            self._wrote(loop)
        return result

    @staticmethod
    def _run(engine: Engine, work: Callable[[Connection], ResultT], write: bool) -> ResultT:
        if write:
            with engine.begin() as connection:
                return work(connection)
        with engine.connect() as connection:
            return work(connection)

    def _wrote(self, loop: asyncio.AbstractEventLoop) -> None:
        self._unchecked = True
        self._checkpoint_if_due(loop)

    def _checkpoint_if_due(self, loop: asyncio.AbstractEventLoop) -> None:
        due = time.monotonic() - self._last_checkpoint >= self._checkpoint_interval
        if due and self._unchecked and not self._checkpointing and not self._disposed:
            self._start_checkpoint(loop)

    def _start_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        # First the bulk, the loop writing on; then what it wrote meanwhile, with its
        # transactions queued behind, so that this one copies everything and the WAL can
        # start again. The loop's writes wait a few milliseconds, not the whole copy.
        self._checkpointing, self._unchecked = True, False
        self._last_checkpoint = time.monotonic()
        done = loop.run_in_executor(self._thread, self._checkpoint)
        done.add_done_callback(functools.partial(self._finish_checkpoint, loop))

    def _finish_checkpoint(
        self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]
    ) -> None:
        _report_checkpoint(done)
        if self._disposed:
            self._checkpointing = False
            return
        self._on_thread += 1
        self._unchecked = False
        finished = loop.run_in_executor(self._thread, self._checkpoint)
        finished.add_done_callback(functools.partial(self._checkpointed, loop))

    def _checkpointed(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        _report_checkpoint(done)
        self._checkpointing = False
        self._on_thread -= 1
        if self._unchecked:
            # Written since: the end of a burst is copied too, with no write after it.
            loop.call_later(self._checkpoint_interval, self._checkpoint_if_due, loop)

    def _checkpoint(self) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _report_checkpoint(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        # The next one copies what this one did not; nothing is lost meanwhile.
        log.warning("SQLite WAL checkpoint failed: %s", type(error).__name__)


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
        """For a group commit: one item's value, one item racing a write elsewhere, or one
        outcome of a delivery never claimed, is worth trying each alone."""
        return self.refuses_data(error) or isinstance(
            error, sa_exc.IntegrityError | UnknownDeliveryError
        )

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
