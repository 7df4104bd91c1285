"""The SQLite delivery path's transactions (``SqliteHotPath``): run on the event loop when
they can go at once, never waiting there for another connection's lock, and the WAL they
write copied back into the database file by checkpoints of their own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from notifier.adapters.sql.database import SqliteHotPath, create_engine


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    path = tmp_path / "notifier.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    return path


@pytest.fixture
async def hot_path(database_file: Path) -> AsyncIterator[SqliteHotPath]:
    engine = create_engine(f"sqlite+aiosqlite:///{database_file}")
    yield SqliteHotPath(engine, checkpoint_interval=0.0)
    await engine.dispose()


def insert_note(note_id: int, body: str = "note") -> Callable[[Connection], None]:
    def work(connection: Connection) -> None:
        connection.exec_driver_sql("INSERT INTO notes (id, body) VALUES (?, ?)", (note_id, body))

    return work


def size_of(path: Path) -> int:
    return path.stat().st_size


async def grows_past(path: Path, size: int) -> bool:
    """Whether the file grows past ``size`` within five seconds (checkpoints run apart)."""
    for _ in range(100):
        if size_of(path) > size:
            return True
        await asyncio.sleep(0.05)
    return size_of(path) > size


def notes(database_file: Path) -> list[int]:
    with sqlite3.connect(database_file) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM notes ORDER BY id")]


async def test_a_write_meeting_another_connections_lock_waits_off_the_loop_and_commits_once(
    hot_path: SqliteHotPath, database_file: Path
) -> None:
    holder = sqlite3.connect(database_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO notes (id, body) VALUES (1, 'holder')")
    calls = 0

    def work(connection: Connection) -> None:
        nonlocal calls
        calls += 1
        connection.exec_driver_sql("INSERT INTO notes (id, body) VALUES (2, 'waiting')")

    waiting = asyncio.create_task(hot_path.run(work, write=True))
    # The loop goes on while the write waits: had it waited on the loop, this sleep would
    # end only after the busy timeout, with the write failed.
    await asyncio.sleep(0.2)
    assert not waiting.done()
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(waiting, timeout=10)
    assert notes(database_file) == [1, 2]
    # Tried on the loop, found the lock taken, then run whole on the thread.
    assert calls == 2


async def test_an_error_other_than_a_lock_is_not_tried_again(
    hot_path: SqliteHotPath, database_file: Path
) -> None:
    await hot_path.run(insert_note(1), write=True)
    calls = 0

    def duplicate(connection: Connection) -> None:
        nonlocal calls
        calls += 1
        connection.exec_driver_sql("INSERT INTO notes (id, body) VALUES (1, 'again')")

    with pytest.raises(sa_exc.IntegrityError):
        await hot_path.run(duplicate, write=True)
    assert calls == 1
    assert notes(database_file) == [1]


async def test_a_read_sees_what_the_loops_writes_committed(hot_path: SqliteHotPath) -> None:
    for note_id in (3, 1, 2):
        await hot_path.run(insert_note(note_id), write=True)

    def read(connection: Connection) -> list[int]:
        rows = connection.exec_driver_sql("SELECT id FROM notes ORDER BY id")
        return [row[0] for row in rows]

    assert await hot_path.run(read, write=False) == [1, 2, 3]


async def test_the_wal_the_loop_writes_is_checkpointed_into_the_database_file(
    hot_path: SqliteHotPath, database_file: Path
) -> None:
    before = size_of(database_file)
    body = "x" * 1000
    for note_id in range(2000):
        await hot_path.run(insert_note(note_id, body), write=True)
    # The loop's connection never checkpoints itself (wal_autocheckpoint=0): only the
    # checkpoints it hands to its thread can grow the database file by these 2 MB.
    assert await grows_past(database_file, before + 1_000_000)


async def test_the_wal_starts_again_while_the_loop_writes_on(
    hot_path: SqliteHotPath, database_file: Path
) -> None:
    # Writes one after another with the loop turning between them, as under load: each
    # checkpoint runs while the next writes come. The WAL can start again from its
    # beginning only after a checkpoint that copied all of it; had the writes gone on
    # during checkpoints, it would hold every one of these 3,000 transactions (12 MB and
    # more) by the end.
    body = "x" * 1000
    for note_id in range(3000):
        await hot_path.run(insert_note(note_id, body), write=True)
        await asyncio.sleep(0)
    assert size_of(database_file.with_name("notifier.db-wal")) < 4_000_000
    assert len(notes(database_file)) == 3000


async def test_what_waited_on_the_thread_is_checkpointed_too(
    hot_path: SqliteHotPath, database_file: Path
) -> None:
    holder = sqlite3.connect(database_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    body = "x" * 1000

    def many(connection: Connection) -> None:
        connection.exec_driver_sql(
            "INSERT INTO notes (id, body) VALUES (?, ?)", [(n, body) for n in range(2000)]
        )

    waiting = asyncio.create_task(hot_path.run(many, write=True))
    await asyncio.sleep(0.1)
    before = size_of(database_file)
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(waiting, timeout=10)
    # 2 MB in one transaction is under the thread's own automatic checkpoint (1,000 pages):
    # only the hot path's checkpoint copies it into the file.
    assert await grows_past(database_file, before + 1_000_000)
