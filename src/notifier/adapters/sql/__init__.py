"""The store's hot statements as plain SQL, one class per database behind one interface
(``statements.Statements``).

The delivery path writes and reads many times a second; through SQLAlchemy's expression
language each call paid for its parameters' compilation, its bookkeeping and, for a batch,
``insertmanyvalues`` — about as much CPU as the rest of the store. Here each statement is text
written once for its database and run with ``Connection.exec_driver_sql``, which keeps what
the store relies on from SQLAlchemy: its transactions, the pool's invalidation of a dead
connection and its wrapping of the driver's errors (``Database.refuses_data`` reads them).
A transaction's statements are one synchronous function (``Database.in_transaction``): on
PostgreSQL run in the async engine's ``run_sync``, on SQLite whole on the event loop when the
lock is free, else on a thread (``database.SqliteHotPath``).
A batch is one statement (PostgreSQL: ``unnest`` of one array per column) or, on SQLite where
nothing comes back from it, one ``executemany``.

Values go in and come out as the tables' column types would bind and read them on that
database (``tables.UtcDateTime``, JSON, booleans), so rows written here read back identically
through the store's other, SQLAlchemy-built, reads.
"""

from __future__ import annotations

from sqlalchemy.engine import Dialect

from notifier.adapters.sql.postgresql import PostgresqlStatements
from notifier.adapters.sql.sqlite import SqliteStatements
from notifier.adapters.sql.statements import Statements


def statements_for(dialect: Dialect) -> Statements:
    """The statements of the database and driver the engine speaks (the placeholders differ:
    ``$1`` for asyncpg, ``?`` for sqlite3)."""
    if (dialect.name, dialect.driver) == ("postgresql", "asyncpg"):
        return PostgresqlStatements(dialect)
    if dialect.name == "sqlite" and dialect.driver in ("aiosqlite", "pysqlite"):
        return SqliteStatements(dialect)
    raise ValueError(
        f"no statements for {dialect.name}+{dialect.driver}: "
        "use postgresql+asyncpg or sqlite+aiosqlite"
    )
