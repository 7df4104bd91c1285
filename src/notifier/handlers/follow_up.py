"""After sending: provider reports move deliveries forward, mark addresses failing or opted
out, and send the message again on the other channel; a timer does the same for messages
that never reach a final status."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.errors import RequestRejected
from notifier.domain.lifecycle import (
    Classification,
    ContactEffect,
    ProviderReport,
    address_change,
    awaiting_final_status,
    condemns_address,
    counts_a_strike,
    deferred_too_long,
    failover_route,
    is_overdue,
    moves_forward,
    refused_send,
)
from notifier.domain.model import (
    Channel,
    ContactStatus,
    DeliveryStatus,
    Reason,
    Route,
    SendRequest,
)
from notifier.domain.records import DeliveryRecord
from notifier.domain.resolution import (
    RecipientPlan,
    choose_language,
    contact_point,
    fallback_channel,
    plan_fallback,
)
from notifier.domain.values import value_type
from notifier.handlers.contact_points import Actor, ContactPointDependencies, reset_contact_point
from notifier.handlers.delivery import (
    DeliveryDependencies,
    RequestReport,
    deliver_planned,
    deliver_request,
    deliver_requests,
    event_for,
)
from notifier.ports import DeliveryHistory, ProviderEvents

log = logging.getLogger(__name__)

OUR_TIMER = "notifier"


@value_type
class FollowUpPolicy:
    strikes_to_fail: int = 3
    """Repeated failures (an unreachable handset, long deferrals) that mark an address."""
    overdue_after: timedelta = timedelta(minutes=30)
    """Default time to a final status before failing over; a district may set its own."""
    sms_final_status_expected: bool = False
    """True when Twilio status callbacks are configured; without them every text would look
    overdue."""


@value_type
class FollowUpDependencies:
    delivery: DeliveryDependencies
    contact_points: ContactPointDependencies
    history: DeliveryHistory
    provider_events: ProviderEvents
    """Reports already applied (providers retry webhooks)."""
    policy: FollowUpPolicy


class ReportOutcome(StrEnum):
    APPLIED = "applied"
    LATE = "late"
    """The delivery had already moved past it (statuses only move forward)."""
    REPEATED = "repeated"
    UNMATCHED = "unmatched"
    IGNORED = "ignored"


async def deliver_and_fail_over(request: SendRequest, deps: FollowUpDependencies) -> RequestReport:
    """Deliver a request; a notification the provider refused outright (an invalid number,
    an opted-out address, a provider that kept failing) goes out on the other channel at
    once, and the address is marked as the refusal says."""
    report = await deliver_request(request, deps.delivery)
    await _fail_over_refused(report, deps)
    return report


async def deliver_and_fail_over_all(
    requests: Sequence[SendRequest], deps: FollowUpDependencies
) -> list[RequestReport | RequestRejected]:
    """``deliver_and_fail_over`` for a batch of requests, delivered as one (see
    ``deliver_requests``); a request that can never be processed comes back rejected."""
    reports = await deliver_requests(requests, deps.delivery)
    for report in reports:
        if isinstance(report, RequestReport):
            await _fail_over_refused(report, deps)
    return reports


async def _fail_over_refused(report: RequestReport, deps: FollowUpDependencies) -> None:
    for event in report.outcomes:
        if event.status is not DeliveryStatus.FAILED or event.channel is Channel.APP:
            continue
        delivery = await deps.delivery.ledger.delivery(event.delivery_id)
        if delivery is None or delivery.address is None:
            continue
        refusal = refused_send(event.reason)
        if refusal is not None:
            await _apply_to_address(
                delivery.channel, delivery.address, refusal, event.occurred_at, deps
            )
        # Idempotent: a redelivered request finds the fallback already claimed.
        await fail_over(delivery, DeliveryStatus.FAILED, event.reason, deps)


async def record_provider_report(
    report: ProviderReport, deps: FollowUpDependencies
) -> ReportOutcome:
    if report.event_key and await deps.provider_events.provider_event_seen(
        report.provider, report.event_key
    ):
        return ReportOutcome.REPEATED
    outcome = await _apply(report, deps)
    # Remembered only once applied: a webhook retried after a crash mid-way is processed
    # again, which is safe because every step is idempotent.
    if report.event_key:
        await deps.provider_events.remember_provider_event(report.provider, report.event_key)
    return outcome


async def _apply(report: ProviderReport, deps: FollowUpDependencies) -> ReportOutcome:
    classification = report.classification
    deliveries = await _matching_deliveries(report, deps)
    address = report.address or next((d.address for d in deliveries if d.address), None)
    if address:
        await _apply_to_address(report.channel, address, classification, report.occurred_at, deps)
    if not deliveries:
        return ReportOutcome.UNMATCHED if classification.status else ReportOutcome.IGNORED
    if classification.status is None:
        return ReportOutcome.IGNORED

    outcome = ReportOutcome.LATE
    for delivery in deliveries:
        if not moves_forward(delivery.status, classification.status):
            # e.g. a "delivered" after the bounce that failed it over, or a bounce after
            # "delivered": the address has been told about above, nothing is sent again.
            continue
        outcome = ReportOutcome.APPLIED
        await _record(delivery, classification.status, classification.reason, deps.delivery)
        if classification.fail_over:
            await fail_over(delivery, classification.status, classification.reason, deps)
    if outcome is ReportOutcome.APPLIED and condemns_address(classification) and address:
        # The address itself is broken: the same message's other deliveries to it (a
        # family sharing the inbox) won't arrive either, so they fail over now too.
        for sibling in await deps.history.open_deliveries_to(
            deliveries[0].message_id, deliveries[0].channel, address
        ):
            # Failed, not bounced (no bounce came for it), but it is the bounce that
            # explains its fallback.
            await _record(sibling, DeliveryStatus.FAILED, classification.reason, deps.delivery)
            await fail_over(
                sibling,
                DeliveryStatus.FAILED,
                classification.reason,
                deps,
                route=failover_route(classification.status, classification.reason),
            )
    return outcome


async def _matching_deliveries(
    report: ProviderReport, deps: FollowUpDependencies
) -> list[DeliveryRecord]:
    """Our ids first; then the provider's message id (one text may stand for several people
    sharing a phone); then, for SendGrid's delayed bounces that carry neither, the last
    delivery to the address before the report."""
    found = await deps.delivery.ledger.delivery(report.delivery_id) if report.delivery_id else None
    provider_message_id = report.provider_message_id or (
        found.provider_message_id if found else None
    )
    if provider_message_id:
        sharing = await deps.delivery.ledger.deliveries_by_provider_id(
            report.channel, provider_message_id
        )
        if sharing:
            return sharing
    if found is not None:
        return [found]
    if report.address:
        latest = await deps.history.latest_delivery_to(
            report.channel, report.address, report.occurred_at
        )
        return [latest] if latest else []
    return []


async def _apply_to_address(
    channel: Channel,
    address: str,
    classification: Classification,
    occurred_at: datetime,
    deps: FollowUpDependencies,
) -> None:
    current = contact_point(
        await deps.delivery.contact_points.contact_points([(channel, address)]), channel, address
    )
    effect = classification.contact
    if effect is not ContactEffect.NONE and effect is not ContactEffect.WORKS:
        deps.delivery.metrics.bounce(channel, classification.address_reason)
    strikes = (
        await deps.delivery.contact_points.add_strike(channel, address)
        if counts_a_strike(classification)
        else 0
    )
    change = address_change(
        current,
        classification,
        strikes=strikes,
        strikes_to_fail=deps.policy.strikes_to_fail,
        occurred_at=occurred_at,
    )
    if change.record is not None:
        await deps.delivery.contact_points.set_contact_point(change.record)
        if change.record.status is ContactStatus.FAILING:
            log.info("%s address now failing (%s)", channel, change.record.reason)
    elif change.person_reset:
        await reset_contact_point(
            channel, address, Actor.person("tracked click"), None, None, deps.contact_points
        )


async def _record(
    delivery: DeliveryRecord,
    status: DeliveryStatus,
    reason: Reason | None,
    deps: DeliveryDependencies,
) -> None:
    event = event_for(
        delivery,
        status,
        deps.clock,
        reason=reason,
        provider=delivery.provider,
        provider_message_id=delivery.provider_message_id,
    )
    await deps.ledger.record_event(event)
    deps.metrics.delivery_recorded(delivery.channel, status)
    await deps.events.publish([event])


async def fail_over(
    delivery: DeliveryRecord,
    status: DeliveryStatus,
    reason: Reason | None,
    deps: FollowUpDependencies,
    *,
    route: Route | None = None,
) -> None:
    """Send the same message again on the other channel, once: never back and forth. When
    the other channel is failing too, that fallback is recorded as skipped or suppressed
    (the app inbox, which always has the message, is then the last resort)."""
    alternate = fallback_channel(delivery.channel, delivery.fallback_from)
    if alternate is None:
        return
    request = await deps.delivery.requests.load_request(delivery.message_id)
    recipient = (await deps.delivery.directory.recipients([delivery.recipient_id])).get(
        delivery.recipient_id
    )
    district = (
        await deps.delivery.directory.district(delivery.district_id)
        if delivery.district_id
        else None
    )
    if request is None or recipient is None or district is None:
        log.warning(
            "cannot fail over delivery %s: its request or recipient is gone", delivery.delivery_id
        )
        return
    address = recipient.address_for(alternate)
    if address is None:
        return  # nothing to fail over to; the bounced/failed event already says so

    point = contact_point(
        await deps.delivery.contact_points.contact_points([(alternate, address)]),
        alternate,
        address,
    )
    state = await deps.delivery.directory.conversation_state(delivery.conversation_id)
    planned = plan_fallback(
        delivery.channel,
        point,
        route or failover_route(status, reason),
        muted=state is not None and delivery.recipient_id in state.muted_by,
    )
    language = delivery.language or choose_language(recipient.language, district)
    plan = RecipientPlan(recipient, language, (planned,))
    deps.delivery.metrics.failover(delivery.channel, alternate, reason)
    await deliver_planned(request, district, plan, planned, deps.delivery)


async def fail_over_overdue(deps: FollowUpDependencies) -> int:
    """The durable timer: an email still only deferred (or, with status callbacks on, a text
    still only sent) past its district's limit fails over as deferred_too_long. It reads the
    store, so it survives restarts; run it periodically."""
    now = deps.delivery.clock.now()
    waiting = awaiting_final_status(sms_final_status_expected=deps.policy.sms_final_status_expected)
    districts: dict[str, timedelta] = {}
    handled = 0
    # Candidates by the shortest limit anyone may have (a district's is whole minutes), then
    # filtered by each delivery's own district.
    shortest = min(deps.policy.overdue_after, timedelta(minutes=1))
    for channel, status in waiting:
        for delivery in await deps.history.overdue_deliveries(channel, status, now - shortest):
            limit = await _overdue_limit(delivery.district_id, districts, deps)
            if not is_overdue(delivery.sent_at, limit, now):
                continue
            report = ProviderReport(
                provider=OUR_TIMER,
                channel=channel,
                classification=deferred_too_long(delivery.reason),
                occurred_at=now,
                delivery_id=delivery.delivery_id,
            )
            await record_provider_report(report, deps)
            handled += 1
    return handled


async def _overdue_limit(
    district_id: str | None, known: dict[str, timedelta], deps: FollowUpDependencies
) -> timedelta:
    if district_id is None:
        return deps.policy.overdue_after
    if district_id not in known:
        district = await deps.delivery.directory.district(district_id)
        minutes = district.deferred_failover_minutes if district else None
        known[district_id] = timedelta(minutes=minutes) if minutes else deps.policy.overdue_after
    return known[district_id]
