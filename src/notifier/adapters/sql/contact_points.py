"""The ``ContactPoints`` port: each address's recorded status, strikes and resume link."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from notifier.adapters import tables as t
from notifier.adapters.sql.database import Database
from notifier.adapters.sql.statements import Row, Statements
from notifier.domain.model import Channel, ContactPoint, ContactStatus, Reason


class SqlContactPoints:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def contact_points(
        self, keys: Iterable[tuple[Channel, str]]
    ) -> Mapping[tuple[Channel, str], ContactPoint]:
        statements = self._db.statements
        return await self._db.reading(
            lambda connection: read_contact_points(statements, connection, keys)
        )

    async def set_contact_point(self, point: ContactPoint) -> None:
        values: dict[str, Any] = {
            "channel": point.channel.value,
            "address": point.address,
            "status": point.status.value,
            "reason": point.reason.value if point.reason else None,
            "since": point.since,
            "updated_at": self._db.clock.now(),
        }
        if point.status is ContactStatus.ACTIVE:
            # Back to active: a new failing period starts from nothing.
            values |= {"strikes": 0, "resume_link_sent_at": None}
        await self._db.write(self._db.upsert(t.contact_points, values, key=("channel", "address")))

    async def contact_point_counts(self) -> dict[tuple[Channel, ContactStatus], int]:
        statement = sa.select(
            t.contact_points.c.channel, t.contact_points.c.status, sa.func.count()
        ).group_by(t.contact_points.c.channel, t.contact_points.c.status)
        async with self._db.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return {(Channel(channel), ContactStatus(status)): count for channel, status, count in rows}

    async def add_strike(self, channel: Channel, address: str) -> int:
        async with self._db.engine.begin() as connection:
            await connection.execute(
                self._db.insert(t.contact_points)
                .values(
                    channel=channel.value,
                    address=address,
                    status=ContactStatus.ACTIVE.value,
                    updated_at=self._db.clock.now(),
                )
                .on_conflict_do_nothing()
            )
            row = (
                await connection.execute(
                    sa.update(t.contact_points)
                    .where(
                        t.contact_points.c.channel == channel.value,
                        t.contact_points.c.address == address,
                    )
                    .values(strikes=t.contact_points.c.strikes + 1)
                    .returning(t.contact_points.c.strikes)
                )
            ).one()
        return int(row.strikes)

    async def mark_resume_link_sent(self, address: str) -> bool:
        result = await self._db.write(
            sa.update(t.contact_points)
            .where(
                t.contact_points.c.channel == Channel.EMAIL.value,
                t.contact_points.c.address == address,
                t.contact_points.c.resume_link_sent_at.is_(None),
            )
            .values(resume_link_sent_at=self._db.clock.now())
        )
        return bool(result.rowcount)


def read_contact_points(
    statements: Statements, connection: Connection, keys: Iterable[tuple[Channel, str]]
) -> Mapping[tuple[Channel, str], ContactPoint]:
    """On the caller's connection: a request's context reads them with its directory rows."""
    wanted = list(dict.fromkeys((channel.value, address) for channel, address in keys))
    rows = statements.contact_points(connection, wanted) if wanted else []
    points = (_contact_point_from_row(row) for row in rows)
    return {(point.channel, point.address): point for point in points}


def _contact_point_from_row(row: Row) -> ContactPoint:
    return ContactPoint(
        channel=Channel(row["channel"]),
        address=row["address"],
        status=ContactStatus(row["status"]),
        reason=Reason(row["reason"]) if row["reason"] else None,
        since=row["since"],
        strikes=row["strikes"],
    )
