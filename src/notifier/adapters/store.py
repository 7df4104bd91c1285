"""The store: one SQL adapter per port (``sql/``), all on one database — SQLite (aiosqlite;
the delivery path's transactions on the event loop or a thread, ``sql.database.SqliteHotPath``)
embedded, PostgreSQL (asyncpg) in production. Built here once for the composition roots."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.adapters.sql.api_tokens import SqlTokenStore
from notifier.adapters.sql.audit import SqlAuditLog
from notifier.adapters.sql.contact_points import SqlContactPoints
from notifier.adapters.sql.database import Database
from notifier.adapters.sql.directory import SqlDirectory
from notifier.adapters.sql.inbox import SqlInbox
from notifier.adapters.sql.ledger import SqlLedger
from notifier.adapters.sql.provider_events import SqlProviderEvents
from notifier.adapters.sql.requests import SqlSentRequests
from notifier.adapters.sql.sandbox_outbox import SqlSandboxOutbox
from notifier.adapters.sql.translations import SqlTranslationCache
from notifier.ports import Clock


@dataclass(frozen=True, slots=True)
class Storage:
    database: Database
    directory: SqlDirectory
    """Directory and DirectoryUpdates."""
    ledger: SqlLedger
    """DeliveryLedger and DeliveryHistory."""
    requests: SqlSentRequests
    contact_points: SqlContactPoints
    inbox: SqlInbox
    translations: SqlTranslationCache
    provider_events: SqlProviderEvents
    audit: SqlAuditLog
    tokens: SqlTokenStore
    sandbox: SqlSandboxOutbox

    @classmethod
    def on(cls, engine: AsyncEngine, clock: Clock) -> Storage:
        database = Database(engine, clock)
        return cls(
            database=database,
            directory=SqlDirectory(database),
            ledger=SqlLedger(database),
            requests=SqlSentRequests(database),
            contact_points=SqlContactPoints(database),
            inbox=SqlInbox(database),
            translations=SqlTranslationCache(database),
            provider_events=SqlProviderEvents(database),
            audit=SqlAuditLog(database),
            tokens=SqlTokenStore(database),
            sandbox=SqlSandboxOutbox(database),
        )

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine
