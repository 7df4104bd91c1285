"""Storage on SQLite and PostgreSQL: the directory read model, the delivery ledger, the app
inbox and the sandbox outbox, specified through the Store port (the `store` fixture runs
every test on both backends, on a freshly migrated database)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from notifier.adapters import tables as t
from notifier.adapters.migrations import alembic_config, migrate
from notifier.adapters.sql.database import (
    IDLE_BEFORE_PING_SECONDS,
    _ping_if_idle,
    create_engine,
)
from notifier.adapters.sql.requests import _request_from_json, _request_to_json
from notifier.adapters.sql.sqlite import RepeatedTimes, SizedStatement, sqlite_time
from notifier.adapters.sql.statements import TIME, value_binder
from notifier.adapters.store import Storage
from notifier.domain.model import (
    Attachment,
    Channel,
    ContactPoint,
    ContactStatus,
    ConversationState,
    ConversationStatus,
    DeliveryEvent,
    DeliveryStatus,
    District,
    OutboundMessage,
    Reason,
    Role,
    Route,
)
from notifier.domain.records import ContextQuery, DeliveryRecord
from notifier.handlers.delivery import event_for as delivery_event_for
from notifier.ports import UnknownDeliveryError
from tests import builders
from tests.builders import RECIPIENT_UPDATED_AT, delivery_record, outbound_message, recipient
from tests.conftest import postgres_url

T0 = RECIPIENT_UPDATED_AT


def district(**overrides: object) -> District:
    """The contract's district with a channel for staff too: role_channels round-trips more
    than one entry."""
    role_channels = {Role.GUARDIAN: Channel.SMS, Role.STAFF: Channel.EMAIL}
    return builders.district(**{"role_channels": role_channels, **overrides})


def inbox_message(**overrides: object) -> OutboundMessage:
    return outbound_message(channel=Channel.APP, **overrides)


@dataclass(frozen=True)
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


def event_for(
    record: DeliveryRecord,
    status: DeliveryStatus,
    *,
    occurred_at: datetime,
    provider: str | None = "twilio",
    provider_message_id: str | None = "SM0123456789abcdef0123456789abcdef",
    reason: Reason | None = None,
) -> DeliveryEvent:
    """The event the delivery use case would record, at a given moment."""
    return delivery_event_for(
        record,
        status,
        FixedClock(occurred_at),
        reason=reason,
        provider=provider,
        provider_message_id=provider_message_id,
    )


def assert_aware_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.utcoffset() == timedelta(0)


# -- health and schema ---------------------------------------------------------------------


async def test_ping_succeeds_on_a_reachable_database(store: Storage) -> None:
    await store.database.ping()


async def test_a_pooled_connection_cut_while_idle_is_replaced_unnoticed(store: Storage) -> None:
    if store.engine.dialect.name == "sqlite":
        # A file has no connection to lose: nothing is pinged.
        assert not sa.event.contains(store.engine.sync_engine, "checkout", _ping_if_idle)
        return
    await store.directory.upsert_district(district())
    async with store.engine.connect() as connection:
        pid = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    # The server ends that session, as a restart would, while it waits in the pool.
    killer = create_async_engine(store.engine.url, poolclass=NullPool)
    try:
        async with killer.connect() as connection:
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()
    await asyncio.sleep(IDLE_BEFORE_PING_SECONDS + 0.1)

    assert await store.directory.district("d-springfield") == district()


async def test_migrating_an_up_to_date_database_again_is_harmless(store: Storage) -> None:
    await store.directory.upsert_district(district())

    await migrate(store.engine)

    async with store.engine.connect() as connection:
        versions = (
            (await connection.execute(sa.text("SELECT version_num FROM alembic_version")))
            .scalars()
            .all()
        )
    assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]
    assert await store.directory.district("d-springfield") == district()


async def test_migrations_create_the_schema_the_tables_declare(store: Storage) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, t.metadata))

    async with store.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_events_and_inbox_entries_survive_the_migrations_down_and_up_again(
    store: Storage,
) -> None:
    # 0009 and 0010 rebuild delivery_events and app_inbox on SQLite (new keys), and both
    # ways must carry the rows across.
    record = delivery_record()
    await store.ledger.claim_delivery(record)
    await store.ledger.record_event(event_for(record, DeliveryStatus.SENT, occurred_at=T0))
    # Kept as an event (a claim and a send are read off the row): the one to carry across.
    await store.ledger.record_event(event_for(record, DeliveryStatus.DELIVERED, occurred_at=T0))
    await store.inbox.write_inbox(inbox_message())

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")

    async with store.engine.begin() as connection:
        await connection.run_sync(downgrade)
    await migrate(store.engine)

    stored = await store.ledger.delivery(record.delivery_id)
    assert stored is not None
    history = (await store.ledger.event_history([stored]))[record.delivery_id]
    assert sorted(event.status.value for event in history) == ["delivered", "queued", "sent"]
    (entry,) = await store.inbox.inbox("guardian-9")
    assert entry["message_id"] == inbox_message().message_id


async def test_text_postgresql_cannot_hold_is_refused_as_the_inputs_fault() -> None:
    # PostgreSQL can't take U+0000 in text (SQLite can): the input's fault, not an outage.
    url = postgres_url()
    if url is None:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set (make test starts PostgreSQL)")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(sa.exc.DBAPIError) as refused:
                await connection.execute(sa.text("SELECT CAST(:text AS TEXT)"), {"text": "a\x00b"})
    finally:
        await engine.dispose()

    assert Storage.on(engine, FixedClock(T0)).database.refuses_data(refused.value)


async def test_an_unreachable_database_is_not_a_refused_value(store: Storage) -> None:
    unreachable = create_async_engine(
        store.engine.url.set(host="127.0.0.1", port=9, database="gone")
        if store.engine.dialect.name == "postgresql"
        else "sqlite+aiosqlite:////nonexistent/dir/notifier.db"
    )
    try:
        with pytest.raises((sa.exc.DBAPIError, OSError)) as down:
            async with unreachable.connect():
                pass
    finally:
        await unreachable.dispose()

    assert not store.database.refuses_data(down.value)
    assert not store.database.refuses_data(ConnectionRefusedError())


# -- districts -----------------------------------------------------------------------------


async def test_upserted_district_reads_back_as_the_same_domain_value(store: Storage) -> None:
    await store.directory.upsert_district(district())

    stored = await store.directory.district("d-springfield")

    assert stored == district()
    assert stored is not None
    assert all(isinstance(role, Role) for role in stored.role_channels)
    assert all(isinstance(channel, Channel) for channel in stored.role_channels.values())
    assert isinstance(stored.default_channel, Channel)
    assert isinstance(stored.languages, tuple)


async def test_district_with_no_role_channels_and_no_senders_reads_back(store: Storage) -> None:
    bare = district(
        role_channels={},
        sms_sender=None,
        email_from_address=None,
        email_from_name=None,
        sms_label=False,
    )
    await store.directory.upsert_district(bare)

    assert await store.directory.district("d-springfield") == bare


async def test_upserting_a_district_again_replaces_it(store: Storage) -> None:
    await store.directory.upsert_district(district())
    changed = district(
        name="Springfield Unified",
        default_channel=Channel.SMS,
        role_channels={Role.STAFF: Channel.SMS},
        languages=("en",),
        max_recipients=30,
    )

    await store.directory.upsert_district(changed)

    assert await store.directory.district("d-springfield") == changed


async def test_unknown_district_reads_as_none(store: Storage) -> None:
    assert await store.directory.district("d-nowhere") is None


async def test_deleted_district_reads_as_none(store: Storage) -> None:
    await store.directory.upsert_district(district())

    assert await store.directory.delete_district("d-springfield") is True
    assert await store.directory.district("d-springfield") is None


async def test_deleting_a_missing_district_returns_false(store: Storage) -> None:
    assert await store.directory.delete_district("d-nowhere") is False


# -- recipients ----------------------------------------------------------------------------


async def test_upserted_recipient_is_applied_and_reads_back_equal(store: Storage) -> None:
    assert await store.directory.upsert_recipient(recipient()) is True

    stored = await store.directory.recipients(["guardian-9"])

    assert stored == {"guardian-9": recipient()}
    assert_aware_utc(stored["guardian-9"].updated_at)


async def test_recipient_without_contact_points_reads_back_equal(store: Storage) -> None:
    app_only = recipient(
        id="student-5",
        role=Role.STUDENT,
        language=None,
        preferred_channel=Channel.APP,
        phone=None,
        email=None,
    )
    assert await store.directory.upsert_recipient(app_only) is True

    assert await store.directory.recipients(["student-5"]) == {"student-5": app_only}


async def test_older_recipient_profile_is_ignored(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())
    older = recipient(display_name="Old Name", updated_at=T0 - timedelta(minutes=1))

    assert await store.directory.upsert_recipient(older) is False

    assert await store.directory.recipients(["guardian-9"]) == {"guardian-9": recipient()}


async def test_newer_recipient_profile_replaces_the_stored_one(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())
    newer = recipient(
        display_name="Dennis K. Park",
        language="en",
        preferred_channel=Channel.EMAIL,
        phone=None,
        app=False,
        updated_at=T0 + timedelta(microseconds=1),
    )

    assert await store.directory.upsert_recipient(newer) is True

    assert await store.directory.recipients(["guardian-9"]) == {"guardian-9": newer}


async def test_recipient_profile_with_the_same_updated_at_is_not_applied(
    store: Storage,
) -> None:
    # Only a strictly newer profile replaces the stored one: a replayed event (same
    # updated_at) changes nothing, even if its content differs.
    await store.directory.upsert_recipient(recipient())

    assert await store.directory.upsert_recipient(recipient(display_name="Replayed")) is False

    assert await store.directory.recipients(["guardian-9"]) == {"guardian-9": recipient()}


async def test_recipient_newer_in_another_utc_offset_replaces_the_stored_one(
    store: Storage,
) -> None:
    # 11:30+01:00 is 10:30Z: newer than 10:00Z although its wall-clock reading is what it is.
    await store.directory.upsert_recipient(recipient())
    plus_one = timezone(timedelta(hours=1))
    newer = recipient(
        display_name="Newer", updated_at=datetime(2026, 11, 20, 11, 30, tzinfo=plus_one)
    )

    assert await store.directory.upsert_recipient(newer) is True

    stored = (await store.directory.recipients(["guardian-9"]))["guardian-9"]
    assert stored.display_name == "Newer"
    assert stored.updated_at == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert_aware_utc(stored.updated_at)


async def test_recipient_older_in_another_utc_offset_is_ignored(store: Storage) -> None:
    # 10:30-01:00 is 11:30Z but 09:30+00:00 isn't: compare instants, not wall clocks.
    minus_one = timezone(timedelta(hours=-1))
    stored_first = recipient(updated_at=datetime(2026, 11, 20, 10, 30, tzinfo=minus_one))
    await store.directory.upsert_recipient(stored_first)
    older = recipient(display_name="Older", updated_at=datetime(2026, 11, 20, 11, 0, tzinfo=UTC))

    assert await store.directory.upsert_recipient(older) is False

    assert (await store.directory.recipients(["guardian-9"]))[
        "guardian-9"
    ].display_name == "Dennis Park"


async def test_tombstone_deletes_the_recipient(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())

    assert await store.directory.delete_recipient("guardian-9") is True

    assert await store.directory.recipients(["guardian-9"]) == {}


async def test_profile_after_a_tombstone_is_applied_whatever_its_age(store: Storage) -> None:
    # A tombstone keeps no updated_at: the next profile, even an older one, starts afresh.
    await store.directory.upsert_recipient(recipient())
    await store.directory.delete_recipient("guardian-9")
    older = recipient(updated_at=T0 - timedelta(days=1))

    assert await store.directory.upsert_recipient(older) is True

    assert await store.directory.recipients(["guardian-9"]) == {"guardian-9": older}


async def test_tombstone_for_a_missing_recipient_returns_false(store: Storage) -> None:
    assert await store.directory.delete_recipient("guardian-404") is False


async def test_recipients_returns_only_the_known_ones(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient(id="guardian-9"))
    await store.directory.upsert_recipient(recipient(id="staff-4", role=Role.STAFF, phone=None))

    found = await store.directory.recipients(["guardian-9", "nobody", "staff-4", "guardian-9"])

    assert set(found) == {"guardian-9", "staff-4"}
    assert found["staff-4"] == recipient(id="staff-4", role=Role.STAFF, phone=None)


async def test_recipients_of_no_ids_is_empty(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())

    assert await store.directory.recipients([]) == {}


async def test_a_requests_context_is_read_together(store: Storage) -> None:
    await store.directory.upsert_district(district())
    await store.directory.upsert_recipient(recipient())
    state = ConversationState("conv-77", ConversationStatus.OPEN, frozenset({"guardian-9"}), T0)
    await store.directory.upsert_conversation_state(state)

    (context,) = await store.directory.request_contexts(
        [ContextQuery("d-springfield", tuple(["guardian-9", "nobody"]), "conv-77")]
    )

    assert context.district == district()
    assert list(context.profiles) == ["guardian-9"]
    assert set(context.points) == {
        (Channel.SMS, "+15555550123"),
        (Channel.EMAIL, "dennis.park@example.org"),
    }
    assert context.conversation == state


async def test_a_batch_of_requests_reads_each_ones_context_in_its_order(
    store: Storage,
) -> None:
    await store.directory.upsert_district(district())
    await store.directory.upsert_recipient(recipient())
    await store.directory.upsert_recipient(recipient(id="staff-4", role=Role.STAFF, phone=None))
    state = ConversationState("conv-77", ConversationStatus.OPEN, frozenset({"staff-4"}), T0)
    await store.directory.upsert_conversation_state(state)

    contexts = await store.directory.request_contexts(
        [
            ContextQuery("d-springfield", ("staff-4", "nobody"), "conv-77"),
            ContextQuery("d-nowhere", ("guardian-9",), "conv-77"),
            ContextQuery("d-springfield", ("guardian-9", "staff-4"), "conv-12"),
        ]
    )

    assert [(c.district, list(c.profiles), c.conversation) for c in contexts] == [
        (district(), ["staff-4"], state),
        (None, [], None),
        (district(), ["guardian-9", "staff-4"], None),
    ]
    assert (Channel.SMS, "+15555550123") in contexts[2].points
    assert contexts[1].points == {}


async def test_a_batch_of_requests_keeps_the_first_of_each_message(store: Storage) -> None:
    first = builders.send_request(message_id="msg-1", body="first")
    again = builders.send_request(message_id="msg-1", request_id="req-again", body="again")
    other = builders.send_request(message_id="msg-2", body="other")

    await store.requests.save_requests([first, again, other])
    await store.requests.save_requests([other])

    assert await store.requests.load_request("msg-1") == first
    assert await store.requests.load_request("msg-2") == other


async def test_a_request_for_an_unknown_district_reads_nothing_more(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())

    (context,) = await store.directory.request_contexts(
        [ContextQuery("d-nowhere", tuple(["guardian-9"]), "conv-77")]
    )

    assert (context.district, context.profiles, context.points) == (None, {}, {})
    assert context.conversation is None


# -- contact points ------------------------------------------------------------------------


async def test_upserting_a_recipient_creates_active_contact_points(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())
    sms_key = (Channel.SMS, "+15555550123")
    email_key = (Channel.EMAIL, "dennis.park@example.org")

    points = await store.contact_points.contact_points([sms_key, email_key])

    assert set(points) == {sms_key, email_key}
    assert points[sms_key] == ContactPoint(
        channel=Channel.SMS, address="+15555550123", status=ContactStatus.ACTIVE
    )
    assert points[email_key] == ContactPoint(
        channel=Channel.EMAIL, address="dennis.park@example.org", status=ContactStatus.ACTIVE
    )


async def test_recipients_sharing_a_phone_share_one_contact_point(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient(id="guardian-9"))
    await store.directory.upsert_recipient(
        recipient(id="guardian-10", display_name="Dana Park", email="dana.park@example.org")
    )

    points = await store.contact_points.contact_points([(Channel.SMS, "+15555550123")])

    assert list(points) == [(Channel.SMS, "+15555550123")]
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(sa.func.count())
            .select_from(t.contact_points)
            .where(t.contact_points.c.address == "+15555550123")
        )
        assert rows.scalar_one() == 1


async def test_changed_address_gets_its_own_active_contact_point(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())
    await store.directory.upsert_recipient(
        recipient(email="dennis@park.example", updated_at=T0 + timedelta(hours=1))
    )

    points = await store.contact_points.contact_points([(Channel.EMAIL, "dennis@park.example")])

    assert points[(Channel.EMAIL, "dennis@park.example")].status is ContactStatus.ACTIVE


async def test_ignored_older_profile_creates_no_contact_points(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())
    older = recipient(phone="+15555550999", updated_at=T0 - timedelta(days=1))

    await store.directory.upsert_recipient(older)

    assert await store.contact_points.contact_points([(Channel.SMS, "+15555550999")]) == {}


async def test_profile_refresh_keeps_the_status_of_an_existing_contact_point(
    store: Storage,
) -> None:
    # Status belongs to the address: the same address arriving again in a newer profile is
    # not a reset (only a changed address, support or the person reset it).
    await store.directory.upsert_recipient(recipient())
    async with store.engine.begin() as connection:
        await connection.execute(
            sa.update(t.contact_points)
            .where(t.contact_points.c.address == "dennis.park@example.org")
            .values(status=ContactStatus.FAILING.value, reason=Reason.MAILBOX_FULL.value, since=T0)
        )

    await store.directory.upsert_recipient(
        recipient(display_name="Dennis", updated_at=T0 + timedelta(days=1))
    )

    point = (
        await store.contact_points.contact_points([(Channel.EMAIL, "dennis.park@example.org")])
    )[(Channel.EMAIL, "dennis.park@example.org")]
    assert point == ContactPoint(
        channel=Channel.EMAIL,
        address="dennis.park@example.org",
        status=ContactStatus.FAILING,
        reason=Reason.MAILBOX_FULL,
        since=T0,
    )
    assert_aware_utc(point.since)


async def test_contact_points_of_unknown_addresses_are_empty(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())

    assert (
        await store.contact_points.contact_points(
            [(Channel.SMS, "+15555550000"), (Channel.EMAIL, "nobody@example.org")]
        )
        == {}
    )


async def test_contact_points_match_channel_and_address_together(store: Storage) -> None:
    await store.directory.upsert_recipient(recipient())

    assert await store.contact_points.contact_points([(Channel.EMAIL, "+15555550123")]) == {}


async def test_contact_points_of_no_keys_is_empty(store: Storage) -> None:
    assert await store.contact_points.contact_points([]) == {}


# -- delivery ledger -----------------------------------------------------------------------


async def test_first_claim_of_a_delivery_is_new(store: Storage) -> None:
    record = delivery_record()

    claim = await store.ledger.claim_delivery(record)

    assert claim.is_new is True
    assert claim.record == record


async def test_a_claim_of_a_delivery_past_queued_is_not_counted_as_an_attempt(
    store: Storage,
) -> None:
    first = delivery_record(request_id="req-1")
    await store.ledger.claim_delivery(first)
    await store.ledger.record_event(event_for(first, DeliveryStatus.SENT, occurred_at=T0))

    claim = await store.ledger.claim_delivery(first)

    assert (claim.record.status, claim.record.attempts) == (DeliveryStatus.SENT, 1)


async def test_second_claim_of_the_same_delivery_returns_the_stored_record(
    store: Storage,
) -> None:
    first = delivery_record(request_id="req-1")
    await store.ledger.claim_delivery(first)
    # A redelivered request may carry another request id; the ledger keeps the first.
    again = replace(first, request_id="req-2", status=DeliveryStatus.SKIPPED)

    claim = await store.ledger.claim_delivery(again)

    assert claim.is_new is False
    stored = claim.record
    assert replace(stored, created_at=None, updated_at=None, attempts=1) == first
    assert stored.request_id == "req-1"
    assert stored.status is DeliveryStatus.QUEUED
    assert stored.attempts == 2, "still queued: the first attempt's outcome is unknown"
    assert_aware_utc(stored.created_at)
    assert_aware_utc(stored.updated_at)


async def test_concurrent_claims_of_one_delivery_let_exactly_one_through(
    store: Storage,
) -> None:
    claims = await asyncio.gather(
        *(store.ledger.claim_delivery(delivery_record()) for _ in range(5))
    )

    assert sorted(claim.is_new for claim in claims) == [False, False, False, False, True]
    assert len(await store.ledger.deliveries_of_message("msg-1042")) == 1


async def test_concurrent_claims_and_outcomes_of_many_deliveries_are_each_kept(
    store: Storage,
) -> None:
    # Written concurrently, they share transactions (group commit); each must still land
    # as if written alone.
    records = [delivery_record(recipient_id=f"guardian-{n}") for n in range(12)]
    claims = await asyncio.gather(*(store.ledger.claim_delivery(r) for r in records))
    sent_at = datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC)
    outcomes = [
        event_for(r, DeliveryStatus.SENT, occurred_at=sent_at, provider_message_id=f"SM{n}")
        if n % 3
        else event_for(r, DeliveryStatus.FAILED, occurred_at=sent_at, reason=Reason.INVALID_ADDRESS)
        for n, r in enumerate(records)
    ]
    await asyncio.gather(*(store.ledger.record_event(event) for event in outcomes))
    # A provider's report names no provider message of its own: what the send kept stays.
    reports = [
        event_for(r, DeliveryStatus.DELIVERED, occurred_at=T0, provider_message_id=None)
        for r in records[1:3]
    ]
    await asyncio.gather(*(store.ledger.record_event(event) for event in reports))

    stored = {d.recipient_id: d for d in await store.ledger.deliveries_of_message("msg-1042")}
    assert all(claim.is_new for claim in claims)
    assert [(stored[f"guardian-{n}"].status, stored[f"guardian-{n}"].reason) for n in range(4)] == [
        (DeliveryStatus.FAILED, Reason.INVALID_ADDRESS),
        (DeliveryStatus.DELIVERED, None),
        (DeliveryStatus.DELIVERED, None),
        (DeliveryStatus.FAILED, Reason.INVALID_ADDRESS),
    ]
    assert stored["guardian-1"].provider_message_id == "SM1"
    assert stored["guardian-1"].sent_at == sent_at
    assert stored["guardian-0"].sent_at is None
    assert stored["guardian-5"].status is DeliveryStatus.SENT


async def test_same_message_and_recipient_on_another_channel_is_a_separate_delivery(
    store: Storage,
) -> None:
    sms = await store.ledger.claim_delivery(delivery_record(channel=Channel.SMS))
    email = await store.ledger.claim_delivery(
        delivery_record(
            channel=Channel.EMAIL, route=Route.FAILOVER_BOUNCE, fallback_from=Channel.SMS
        )
    )

    assert sms.is_new is True
    assert email.is_new is True
    records = await store.ledger.deliveries_of_message("msg-1042")
    assert [(r.channel, r.fallback_from, r.route) for r in records] == [
        (Channel.EMAIL, Channel.SMS, Route.FAILOVER_BOUNCE),
        (Channel.SMS, None, Route.ROLE_DEFAULT),
    ]


async def test_same_recipient_of_another_message_is_a_separate_delivery(store: Storage) -> None:
    await store.ledger.claim_delivery(delivery_record(message_id="msg-1042"))

    claim = await store.ledger.claim_delivery(delivery_record(message_id="msg-1043"))

    assert claim.is_new is True


async def test_recorded_event_moves_the_delivery_to_sent(store: Storage) -> None:
    record = delivery_record()
    await store.ledger.claim_delivery(record)
    sent_at = datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC)

    await store.ledger.record_event(event_for(record, DeliveryStatus.SENT, occurred_at=sent_at))

    claim = await store.ledger.claim_delivery(record)
    assert claim.is_new is False
    assert claim.record.status is DeliveryStatus.SENT
    assert claim.record.provider == "twilio"
    assert claim.record.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert claim.record.updated_at == sent_at
    assert claim.record.reason is None


async def test_recorded_failure_keeps_its_reason(store: Storage) -> None:
    record = delivery_record(channel=Channel.EMAIL)
    await store.ledger.claim_delivery(record)

    await store.ledger.record_event(
        event_for(
            record,
            DeliveryStatus.BOUNCED,
            occurred_at=T0,
            provider="sendgrid",
            provider_message_id="sg-1",
            reason=Reason.MAILBOX_FULL,
        )
    )

    (stored,) = await store.ledger.deliveries_of_message("msg-1042")
    assert stored.status is DeliveryStatus.BOUNCED
    assert stored.reason is Reason.MAILBOX_FULL
    assert stored.provider == "sendgrid"


async def test_recording_the_same_event_twice_is_harmless(store: Storage) -> None:
    record = delivery_record()
    await store.ledger.claim_delivery(record)
    sent = event_for(record, DeliveryStatus.SENT, occurred_at=T0)
    delivered = event_for(record, DeliveryStatus.DELIVERED, occurred_at=T0 + timedelta(seconds=1))

    for event in (sent, sent, delivered, delivered):
        await store.ledger.record_event(event)

    async with store.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(t.delivery_events.c.status)
            .where(t.delivery_events.c.delivery_id == record.delivery_id)
            .order_by(t.delivery_events.c.occurred_at)
        )
        # The claim and the send are facts of the row (domain.history), not kept.
        assert rows.scalars().all() == ["delivered"]
    (stored,) = await store.ledger.deliveries_of_message("msg-1042")
    assert stored.status is DeliveryStatus.DELIVERED
    history = (await store.ledger.event_history([stored]))[stored.delivery_id]
    assert sorted(event.status.value for event in history) == ["delivered", "queued", "sent"]


async def test_deliveries_of_an_unknown_message_are_empty(store: Storage) -> None:
    assert await store.ledger.deliveries_of_message("msg-none") == []


# -- app inbox -----------------------------------------------------------------------------


async def test_inbox_entry_is_written_once_per_recipient_and_message(store: Storage) -> None:
    message = inbox_message()

    first = await store.inbox.write_inbox(message)
    second = await store.inbox.write_inbox(message)

    assert first == second == message.delivery_id
    (entry,) = await store.inbox.inbox("guardian-9")
    assert entry["entry_id"] == message.delivery_id
    assert entry["message_id"] == "msg-1042"
    assert entry["conversation_id"] == "conv-77"
    assert entry["sender_name"] == "Ms. Rivera"
    assert entry["body"] == "Los formularios de la excursión vencen el viernes."
    assert entry["language"] == "es"
    assert entry["read_at"] is None
    assert_aware_utc(entry["created_at"])


async def test_rewritten_inbox_entry_keeps_its_first_content(store: Storage) -> None:
    await store.inbox.write_inbox(inbox_message())

    await store.inbox.write_inbox(inbox_message(inbox_body="edited"))

    (entry,) = await store.inbox.inbox("guardian-9")
    assert entry["body"] == "Los formularios de la excursión vencen el viernes."


async def test_inbox_holds_each_message_of_its_recipient_only(store: Storage) -> None:
    await store.inbox.write_inbox(inbox_message(recipient_id="guardian-9", message_id="msg-1"))
    await store.inbox.write_inbox(inbox_message(recipient_id="guardian-9", message_id="msg-2"))
    await store.inbox.write_inbox(inbox_message(recipient_id="staff-4", message_id="msg-1"))

    assert [e["message_id"] for e in await store.inbox.inbox("guardian-9")] == ["msg-1", "msg-2"]
    assert [e["message_id"] for e in await store.inbox.inbox("staff-4")] == ["msg-1"]
    assert await store.inbox.inbox("nobody") == []


async def test_inbox_entry_without_sender_or_body_stores_empty_text(store: Storage) -> None:
    await store.inbox.write_inbox(inbox_message(sender_name=None, inbox_body=None))

    (entry,) = await store.inbox.inbox("guardian-9")
    assert (entry["sender_name"], entry["body"]) == ("", "")


# -- sandbox outbox ------------------------------------------------------------------------


async def test_sandbox_send_of_the_same_delivery_keeps_one_entry(store: Storage) -> None:
    first = await store.sandbox.record_sandbox_send(outbound_message())
    second = await store.sandbox.record_sandbox_send(outbound_message())

    assert first == second
    assert [entry["id"] for entry in await store.sandbox.sandbox_outbox()] == [first]


async def test_sandbox_outbox_lists_email_and_sms_sends(store: Storage) -> None:
    email_id = await store.sandbox.record_sandbox_send(
        outbound_message(channel=Channel.EMAIL, delivery_id="dlv-email-1")
    )
    sms_id = await store.sandbox.record_sandbox_send(outbound_message())

    email, sms = await store.sandbox.sandbox_outbox()

    assert email["id"] == email_id
    assert email["delivery_id"] == "dlv-email-1"
    assert email["channel"] == "email"
    assert email["to_address"] == "dennis.park@example.org"
    assert email["from_address"] == "no-reply@springfield.example"
    assert email["subject"] == "Nuevo mensaje de Ms. Rivera"
    assert email["body"] == "Los formularios vencen el viernes."
    assert email["html"] == "<p>Los formularios vencen el viernes.</p>"
    assert email["language"] == "es"
    assert_aware_utc(email["created_at"])

    assert sms["id"] == sms_id
    assert sms["channel"] == "sms"
    assert sms["to_address"] == "+15555550123"
    assert sms["from_address"] == "MG00000000000000000000000000000000"
    assert sms["subject"] is None
    assert sms["body"] == "Para Dennis: Los formularios vencen el viernes."
    assert sms["html"] is None


async def test_sandbox_refuses_a_message_with_neither_sms_nor_email(store: Storage) -> None:
    with pytest.raises(ValueError, match="SMS and email only"):
        await store.sandbox.record_sandbox_send(inbox_message())

    assert await store.sandbox.sandbox_outbox() == []


# -- time ----------------------------------------------------------------------------------


async def test_timestamps_come_back_as_aware_utc(store: Storage) -> None:
    tokyo = timezone(timedelta(hours=9))
    updated_at = datetime(2026, 11, 20, 19, 0, 0, 123456, tzinfo=tokyo)
    await store.directory.upsert_recipient(recipient(updated_at=updated_at))
    record = delivery_record()
    await store.ledger.claim_delivery(record)
    await store.ledger.record_event(event_for(record, DeliveryStatus.SENT, occurred_at=updated_at))

    stored = (await store.directory.recipients(["guardian-9"]))["guardian-9"]
    (ledger,) = await store.ledger.deliveries_of_message("msg-1042")

    assert stored.updated_at == updated_at
    assert stored.updated_at.tzinfo is not None
    assert stored.updated_at.utcoffset() == timedelta(0)
    assert stored.updated_at.hour == 10
    assert stored.updated_at.microsecond == 123456
    assert ledger.updated_at == updated_at
    assert_aware_utc(ledger.updated_at)
    assert_aware_utc(ledger.created_at)


async def test_naive_recipient_updated_at_is_refused(store: Storage) -> None:
    # SQLAlchemy wraps the type's ValueError; the write is refused all the same.
    with pytest.raises(StatementError, match="naive datetime"):
        await store.directory.upsert_recipient(recipient(updated_at=datetime(2026, 11, 20, 10, 0)))

    assert await store.directory.recipients(["guardian-9"]) == {}


async def test_naive_event_time_is_refused(store: Storage) -> None:
    record = delivery_record()
    await store.ledger.claim_delivery(record)
    naive = datetime(2026, 11, 28, 15, 0)

    # SQLAlchemy wraps the type's ValueError; the write is refused all the same.
    with pytest.raises(StatementError, match="naive datetime"):
        await store.ledger.record_event(event_for(record, DeliveryStatus.SENT, occurred_at=naive))

    (stored,) = await store.ledger.deliveries_of_message("msg-1042")
    assert stored.status is DeliveryStatus.QUEUED


# -- writes that share a transaction (group commit) ----------------------------------------


async def test_the_delivery_path_writes_on_after_the_engine_is_disposed(store: Storage) -> None:
    first = delivery_record(recipient_id="guardian-1")
    await store.ledger.claim_delivery(first)

    # What a database restart makes the pool do: every connection closed, new ones opened.
    await store.engine.dispose()
    second = delivery_record(recipient_id="guardian-2")
    claim = await store.ledger.claim_delivery(second)

    assert claim.is_new
    stored = await store.ledger.deliveries_of_message("msg-1042")
    assert [d.recipient_id for d in stored] == ["guardian-1", "guardian-2"]


async def test_a_delivery_claimed_twice_in_one_batch_is_new_once_and_counted_once(
    store: Storage,
) -> None:
    record = delivery_record(request_id="req-1")
    again = replace(record, request_id="req-2")

    first, second = await asyncio.gather(
        store.ledger.claim_delivery(record), store.ledger.claim_delivery(again)
    )

    assert (first.is_new, second.is_new) == (True, False)
    assert first.record == record
    assert second.record.request_id == "req-1"
    assert second.record.attempts == 2, "still queued: the first copy's outcome is unknown"
    (stored,) = await store.ledger.deliveries_of_message("msg-1042")
    assert stored == second.record


async def test_a_batch_of_new_and_known_claims_counts_only_those_still_queued(
    store: Storage,
) -> None:
    sent = delivery_record(recipient_id="guardian-1")
    queued = delivery_record(recipient_id="guardian-2")
    fresh = delivery_record(recipient_id="guardian-3")
    await store.ledger.claim_delivery(sent)
    await store.ledger.claim_delivery(queued)
    await store.ledger.record_event(event_for(sent, DeliveryStatus.SENT, occurred_at=T0))

    claims = await asyncio.gather(*(store.ledger.claim_delivery(r) for r in (sent, fresh, queued)))

    assert [claim.is_new for claim in claims] == [False, True, False]
    assert [(c.record.recipient_id, c.record.status, c.record.attempts) for c in claims] == [
        ("guardian-1", DeliveryStatus.SENT, 1),
        ("guardian-3", DeliveryStatus.QUEUED, 1),
        ("guardian-2", DeliveryStatus.QUEUED, 2),
    ]
    stored = {
        d.recipient_id: d.attempts for d in await store.ledger.deliveries_of_message("msg-1042")
    }
    assert stored == {"guardian-1": 1, "guardian-2": 2, "guardian-3": 1}


async def test_changes_of_one_delivery_in_one_batch_apply_in_their_order(
    store: Storage,
) -> None:
    sent_at = datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC)
    store = Storage.on(store.engine, FixedClock(sent_at - timedelta(seconds=1)))
    record = delivery_record()
    other = delivery_record(recipient_id="staff-4")
    await asyncio.gather(store.ledger.claim_delivery(record), store.ledger.claim_delivery(other))
    deferred_at = sent_at + timedelta(seconds=5)
    delivered_at = sent_at + timedelta(seconds=9)

    await asyncio.gather(
        store.ledger.record_event(
            event_for(record, DeliveryStatus.SENT, occurred_at=sent_at, provider_message_id="SM1"),
            sms_cost=(2, "GSM-7"),
        ),
        store.ledger.record_event(event_for(other, DeliveryStatus.SENT, occurred_at=sent_at)),
        store.ledger.record_event(
            event_for(
                record,
                DeliveryStatus.DEFERRED,
                occurred_at=deferred_at,
                provider=None,
                provider_message_id=None,
            )
        ),
        store.ledger.record_event(
            event_for(
                record,
                DeliveryStatus.DELIVERED,
                occurred_at=delivered_at,
                provider=None,
                provider_message_id=None,
            )
        ),
    )

    stored = await store.ledger.delivery(record.delivery_id)
    assert stored is not None
    assert (stored.status, stored.updated_at, stored.sent_at) == (
        DeliveryStatus.DELIVERED,
        delivered_at,
        sent_at,
    )
    assert (stored.provider, stored.provider_message_id) == ("twilio", "SM1")
    history = (await store.ledger.event_history([stored]))[record.delivery_id]
    assert [event.status for event in history] == [
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENT,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.DELIVERED,
    ]
    async with store.engine.connect() as connection:
        cost = (
            await connection.execute(
                sa.select(t.deliveries.c.sms_segments, t.deliveries.c.sms_encoding).where(
                    t.deliveries.c.delivery_id == record.delivery_id
                )
            )
        ).one()
    assert tuple(cost) == (2, "GSM-7"), "a report after the send keeps what the text cost"
    other_stored = await store.ledger.delivery(other.delivery_id)
    assert other_stored is not None
    assert other_stored.status is DeliveryStatus.SENT


async def test_an_outcome_of_an_unknown_delivery_fails_alone(store: Storage) -> None:
    known = delivery_record()
    unknown = delivery_record(recipient_id="never-claimed")
    await store.ledger.claim_delivery(known)

    results = await asyncio.gather(
        store.ledger.record_event(event_for(known, DeliveryStatus.SENT, occurred_at=T0)),
        store.ledger.record_event(event_for(unknown, DeliveryStatus.SENT, occurred_at=T0)),
        return_exceptions=True,
    )

    assert results[0] is None
    assert isinstance(results[1], UnknownDeliveryError)
    stored = await store.ledger.delivery(known.delivery_id)
    assert stored is not None
    assert stored.status is DeliveryStatus.SENT


async def test_a_claim_whose_text_postgresql_refuses_fails_alone(store: Storage) -> None:
    good = delivery_record(recipient_id="guardian-1")
    odd = delivery_record(recipient_id="guardian-2", address="+1555\x000123")

    results = await asyncio.gather(
        store.ledger.claim_delivery(good), store.ledger.claim_delivery(odd), return_exceptions=True
    )

    first = results[0]
    assert not isinstance(first, BaseException)
    assert first.is_new
    if store.engine.dialect.name == "sqlite":
        # SQLite's text holds U+0000: stored, and read back whole.
        second = results[1]
        assert not isinstance(second, BaseException)
        assert second.is_new
        assert (await store.ledger.claim_delivery(odd)).record.address == "+1555\x000123"
        return
    assert isinstance(results[1], sa.exc.DBAPIError)
    assert store.database.refuses_data(results[1])
    assert [d.recipient_id for d in await store.ledger.deliveries_of_message("msg-1042")] == [
        "guardian-1"
    ]


async def test_inbox_copies_of_one_message_written_together_keep_one_entry(
    store: Storage,
) -> None:
    message = inbox_message()

    ids = await asyncio.gather(
        store.inbox.write_inbox(message),
        store.inbox.write_inbox(replace(message, inbox_body="edited")),
    )

    assert ids == [message.delivery_id, message.delivery_id]
    (entry,) = await store.inbox.inbox("guardian-9")
    assert entry["body"] == "Los formularios de la excursión vencen el viernes."


# -- text and time as stored ----------------------------------------------------------------

ODD_TEXT = "e\u0301 😀 \u2028\u200d\ufeff\u202e ‎שלום \\ ' \" % ? $1 \x01\x7f \U0010ffff"
"""Combining marks, an astral emoji, separators, bidi controls, quotes, backslash, what looks
like placeholders, control characters and the last code point."""


def odd_text(store: Storage) -> str:
    """With U+0000 too where the database can hold it (SQLite)."""
    return ODD_TEXT + ("\x00 after" if store.engine.dialect.name == "sqlite" else "")


async def test_odd_unicode_text_comes_back_as_it_went_in(store: Storage) -> None:
    text = odd_text(store)
    recipient_id = "guardian-" + text
    await store.directory.upsert_district(district())
    await store.directory.upsert_recipient(
        recipient(id=recipient_id, display_name=text, email=text + "@example.org")
    )
    record = delivery_record(recipient_id=recipient_id, language=text, channel=Channel.EMAIL)
    copy = inbox_message(recipient_id=recipient_id, sender_name=text, inbox_body=text)

    await store.ledger.claim_delivery(record, inbox_copy=copy)
    await store.ledger.record_event(
        event_for(record, DeliveryStatus.SENT, occurred_at=T0, provider_message_id=text)
    )
    await store.requests.save_requests(
        [builders.send_request(body=text, translations={"es": text})]
    )

    (context,) = await store.directory.request_contexts(
        [ContextQuery("d-springfield", tuple([recipient_id]), "conv-77")]
    )
    assert context.profiles[recipient_id].display_name == text
    assert (Channel.EMAIL, text + "@example.org") in context.points
    (entry,) = await store.inbox.inbox(recipient_id)
    assert (entry["sender_name"], entry["body"]) == (text, text)
    again = await store.ledger.claim_delivery(record)
    assert (again.record.language, again.record.provider_message_id) == (text, text)
    (stored,) = await store.ledger.deliveries_of_message("msg-1042")
    assert stored == again.record
    loaded = await store.requests.load_request("msg-1042")
    assert loaded is not None
    assert (loaded.body, loaded.translations) == (text, {"es": text})


async def test_rows_written_by_the_delivery_path_are_stored_as_sqlalchemy_stores_them(
    store: Storage,
) -> None:
    tokyo = timezone(timedelta(hours=9))
    now = datetime(2026, 11, 29, 0, 0, 0, 7, tzinfo=tokyo)
    sent_at = datetime(2026, 11, 28, 15, 0, 1, 123456, tzinfo=UTC)
    clocked = Storage.on(store.engine, FixedClock(now))
    record = delivery_record(sent_at=sent_at)
    request = builders.send_request(body="naïve 😀", translations={"es": "¡sí!"})
    await clocked.ledger.claim_delivery(record, inbox_copy=inbox_message())
    await clocked.ledger.record_event(event_for(record, DeliveryStatus.SENT, occurred_at=sent_at))
    await clocked.requests.save_requests([request])
    # The same values written by SQLAlchemy, through the tables' column types.
    twin = delivery_record(recipient_id="twin", sent_at=sent_at)
    async with store.engine.begin() as connection:
        await connection.execute(
            sa.insert(t.deliveries).values(
                delivery_id=twin.delivery_id,
                request_id=twin.request_id,
                message_id=twin.message_id,
                conversation_id=twin.conversation_id,
                recipient_id=twin.recipient_id,
                channel=twin.channel.value,
                status=DeliveryStatus.SENT.value,
                sent_at=sent_at,
                created_at=now,
                updated_at=sent_at,
            )
        )
        await connection.execute(
            sa.insert(t.send_requests).values(
                message_id="twin",
                payload=_request_to_json(request),
                stored_at=now,
            )
        )

    c = t.deliveries.c
    as_text = [sa.cast(column, sa.Text) for column in (c.sent_at, c.created_at, c.updated_at)]
    async with store.engine.connect() as connection:
        raw = (
            await connection.execute(sa.select(*as_text).order_by(c.recipient_id != "twin"))
        ).all()
        raw_requests = (
            await connection.execute(
                sa.select(
                    sa.cast(t.send_requests.c.payload, sa.Text),
                    sa.cast(t.send_requests.c.stored_at, sa.Text),
                ).order_by(t.send_requests.c.message_id != "twin")
            )
        ).all()
        inbox_created = (
            await connection.execute(sa.select(sa.cast(t.app_inbox.c.created_at, sa.Text)))
        ).scalar_one()
    assert raw[0] == raw[1]
    assert raw_requests[0] == raw_requests[1]
    assert inbox_created == raw[0][1]

    (stored,) = [
        d for d in await store.ledger.deliveries_of_message("msg-1042") if d.recipient_id != "twin"
    ]
    assert (stored.sent_at, stored.created_at, stored.updated_at) == (sent_at, now, sent_at)
    assert all(
        value is not None and value.tzinfo is UTC
        for value in (stored.sent_at, stored.created_at, stored.updated_at)
    )
    found = (await clocked.ledger.claim_delivery(record)).record
    assert found == stored, "read by the claim's driver SQL as by SQLAlchemy"
    (entry,) = await store.inbox.inbox("guardian-9")
    assert entry["created_at"] == now


async def test_a_requests_context_reads_as_sqlalchemy_reads_the_same_rows(
    store: Storage,
) -> None:
    since = datetime(2026, 11, 21, 8, 30, 0, 654321, tzinfo=timezone(timedelta(hours=-5)))
    state = ConversationState(
        "conv-77", ConversationStatus.OPEN, frozenset({"guardian-9", "staff-4"}), T0
    )
    await store.directory.upsert_district(district(bilingual_shared_texts=True, sms_label=False))
    await store.directory.upsert_recipient(recipient())
    await store.directory.upsert_conversation_state(state)
    point = ContactPoint(
        Channel.EMAIL,
        "dennis.park@example.org",
        ContactStatus.FAILING,
        reason=Reason.MAILBOX_FULL,
        since=since,
    )
    await store.contact_points.set_contact_point(point)

    (context,) = await store.directory.request_contexts(
        [ContextQuery("d-springfield", tuple(["guardian-9"]), "conv-77")]
    )

    assert context.district == district(bilingual_shared_texts=True, sms_label=False)
    assert context.district is not None
    assert context.district.sms_label is False
    assert context.district.bilingual_shared_texts is True
    assert context.profiles == {"guardian-9": recipient()}
    assert context.profiles["guardian-9"].app is True
    assert context.points[(Channel.EMAIL, "dennis.park@example.org")] == point
    assert context.conversation == state
    async with store.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(t.recipients.c.updated_at, t.contact_points.c.since)
                .select_from(t.recipients)
                .join(t.contact_points, t.contact_points.c.address == t.recipients.c.email)
            )
        ).one()
        muted_by = (
            await connection.execute(sa.select(t.conversation_states.c.muted_by))
        ).scalar_one()
    assert context.profiles["guardian-9"].updated_at == row.updated_at
    assert context.points[(Channel.EMAIL, "dennis.park@example.org")].since == row.since
    assert row.since == since
    assert frozenset(muted_by) == state.muted_by


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 7, 7, 30, tzinfo=UTC),
        datetime(2026, 12, 7, 7, 30, 5, 120, tzinfo=UTC),
        datetime(2026, 3, 8, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(999, 1, 1, 23, 0, tzinfo=timezone(timedelta(hours=-1))),
        datetime(999, 1, 1, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 7, 7, 30, tzinfo=timezone(timedelta(0))),
        None,
    ],
)
def test_sqlite_times_are_bound_as_sqlalchemy_binds_the_column(moment: datetime | None) -> None:
    assert sqlite_time(moment) == value_binder(TIME, sqlite.dialect())(moment)


def test_repeated_times_answer_each_time_as_the_column_binds_it() -> None:
    times = RepeatedTimes()
    first = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)
    moments = [first, first, datetime(2026, 12, 7, 7, 31, tzinfo=UTC), None, first, None]
    bind = value_binder(TIME, sqlite.dialect())
    assert [times(m) for m in moments] == [bind(m) for m in moments]


def test_sqlite_refuses_a_naive_time_as_the_column_does() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_time(datetime(2026, 12, 7, 7, 30))


def test_a_kept_request_holds_every_field_as_its_dataclass_does_and_reads_back_equal() -> None:
    request = builders.send_request(
        attachments=(Attachment("trip.pdf", "https://files.example.org/trip.pdf", 2048),),
        translations={"es": "Hola"},
        conversation_title="Field trip",
    )
    as_dataclass = asdict(request) | {"created_at": request.created_at.isoformat()}

    kept = _request_to_json(request)

    assert json.dumps(kept) == json.dumps(as_dataclass)
    assert _request_from_json(json.loads(json.dumps(kept))) == request


def test_sqlite_statements_run_over_power_of_two_runs_of_the_batch_in_its_order() -> None:
    statement = SizedStatement("SELECT 1 FROM (VALUES ", "(?, ?)", ")", others=6)
    rows = list(range(1000))

    chunks = list(statement.chunks(rows))
    texts = {text for size in range(1, 1000) for text, _ in statement.chunks(rows[:size])}

    assert [len(chunk) for _, chunk in chunks] == [512, 256, 128, 64, 32, 8]
    assert [row for _, chunk in chunks for row in chunk] == rows
    assert all(text.count("?") == 2 * len(chunk) for text, chunk in chunks)
    assert len(texts) == 10, "one prepared text per power of two, whatever the batch sizes"
    assert statement.max_rows == 8192, "32,766 parameters less 6 hold 16,380 rows of two"


async def test_a_requests_context_for_many_recipients_finds_each_one(store: Storage) -> None:
    await store.directory.upsert_district(district())
    ids = [f"guardian-{n}" for n in range(40)]
    for n, recipient_id in enumerate(ids):
        await store.directory.upsert_recipient(
            recipient(id=recipient_id, phone=f"+1555555{n:04d}", email=f"g{n}@example.org")
        )

    (alone,) = await store.directory.request_contexts(
        [ContextQuery("d-springfield", tuple(ids[:1]), "conv-77")]
    )
    (context,) = await store.directory.request_contexts(
        [ContextQuery("d-springfield", (*ids, "nobody", ids[0]), "conv-77")]
    )

    assert list(alone.profiles) == ids[:1]
    assert set(context.profiles) == set(ids)
    assert len(context.points) == 80
    assert context.points[(Channel.SMS, "+15555550039")].status is ContactStatus.ACTIVE
