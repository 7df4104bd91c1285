"""Delivering a send request: resolve each recipient, send, record, publish.
Each delivery happens at most once per (message, recipient, channel)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from notifier.domain.admission import admit
from notifier.domain.circuit import CircuitBreaker
from notifier.domain.errors import RequestRejected
from notifier.domain.identity import delivery_id_for, event_id_for
from notifier.domain.model import (
    Channel,
    ContactStatus,
    DeliveryEvent,
    DeliveryStatus,
    District,
    OutboundMessage,
    Reason,
    SendRequest,
)
from notifier.domain.records import Claim, ContextQuery, DeliveryRecord
from notifier.domain.rendering import Composer, first_name
from notifier.domain.resolution import (
    PlannedDelivery,
    RecipientPlan,
    contact_point,
    message_text,
    plan_recipient,
    recipients_to_notify,
)
from notifier.domain.resume_links import make_token
from notifier.domain.values import value_type
from notifier.handlers.sending import GuardedLookup, GuardedSender, RetryPolicy, SendGuards
from notifier.handlers.translations import TranslationSource, Underway, translations
from notifier.logs import logging_context
from notifier.ports import (
    Catalogs,
    ChannelSender,
    Clock,
    ContactPoints,
    DeliveryLedger,
    Directory,
    EventPublisher,
    Inbox,
    Metrics,
    PermanentProviderError,
    ProviderError,
    ProviderReceipt,
    ProviderUnavailableError,
    SendPacer,
    SentMessageLookup,
    SentRequests,
    TransientProviderError,
    TranslationCache,
    Translator,
    UnknownOutcomeError,
)

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

INBOX = "app-inbox"
"""The provider named on app inbox deliveries: notifier's own store."""


class DeliveryInterrupted(Exception):
    """The first copy of a delivery failed before recording an outcome; the copies that
    waited for it fail too, so their request is retried as a whole."""


@value_type
class ResumeLinks:
    """Issues the signed "use my email again" link carried by the first fallback SMS."""

    base_url: str
    secret: bytes
    valid_for: timedelta

    def url_for(self, address: str, now: datetime) -> str:
        token = make_token(address, now + self.valid_for, self.secret)
        return f"{self.base_url.rstrip('/')}/r/{token}"


@dataclass(slots=True)
class UnknownOutcomeLookups:
    """Who can be asked whether a delivery of unknown outcome already went out, per channel,
    and how many more times this process may ask. Bounded because the providers' list
    endpoints are paginated and rate-limited: past the budget (or when asking fails) the
    delivery is sent again, since a duplicate is better than a lost notice."""

    providers: Mapping[Channel, SentMessageLookup] = field(default_factory=dict)
    remaining: int = 0

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass(slots=True)
class InProgress:
    """The deliveries this process is working on, kept across a batch's retries."""

    underway: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    """By delivery id, the outcome of the copy being worked on. A second copy (the same
    request twice in one batch, or in two batches open at once) waits for it instead of
    taking its "queued" row for a dead attempt."""
    unrecorded: dict[str, UnrecordedOutcome] = field(default_factory=dict)
    """Provider answers this process got but could not record (the database went away), by
    delivery id. The batch's retry records them instead of sending again."""
    translating: Underway = field(default_factory=dict)
    """Machine translations being fetched, shared by the copies of a message in flight."""


@value_type
class DeliveryDependencies:
    directory: Directory
    ledger: DeliveryLedger
    requests: SentRequests
    contact_points: ContactPoints
    inbox: Inbox
    translations: TranslationCache
    senders: Mapping[Channel, ChannelSender]
    events: EventPublisher
    catalogs: Catalogs
    clock: Clock
    metrics: Metrics
    retry: RetryPolicy
    in_flight: asyncio.Semaphore
    """Bounds provider calls in progress across all requests of the process."""
    resume_links: ResumeLinks | None = None
    """None when no public URL is configured: fallback texts then carry no link."""
    translator: Translator | None = None
    """None: bodies without a supplied translation go out in the original, with a note."""
    message_link_template: str | None = None
    """Where a message can be read in the app ({conversation_id}, {message_id}), for the
    "Read more" of a shortened text."""
    circuits: Mapping[str, CircuitBreaker] = field(default_factory=dict)
    """Per provider name; a provider without one is always called."""
    pacers: Mapping[Channel, SendPacer] = field(default_factory=dict)
    """Per channel: the provider's rate limit, waited for before each call."""
    reply_address_secret: bytes | None = None
    """Signs each email's Reply-To address (with the district's reply domain); None: emails
    carry no Reply-To and replies go to the sender address."""
    in_progress: InProgress = field(default_factory=InProgress)
    """This process's deliveries between their claim and their recorded outcome."""
    lookups: UnknownOutcomeLookups = field(default_factory=UnknownOutcomeLookups)
    """Asked before sending again a delivery an earlier attempt may have sent."""

    @property
    def composer(self) -> Composer:
        return Composer(self.catalogs, self.message_link_template, self.reply_address_secret)

    @property
    def guards(self) -> SendGuards:
        return SendGuards(
            self.clock, self.metrics, self.retry, self.in_flight, self.circuits, self.pacers
        )

    def guarded(self, channel: Channel) -> GuardedSender:
        """The channel's sender behind its circuit, pacing, in-flight slot and retries."""
        return GuardedSender(self.senders[channel], self.guards)

    def guarded_lookup(self, lookup: SentMessageLookup) -> GuardedLookup:
        """A provider's list of sent messages asked in an in-flight slot, with retries."""
        return GuardedLookup(lookup, self.guards)


@value_type
class UnrecordedOutcome:
    event: DeliveryEvent
    sms_cost: tuple[int, str] | None


@value_type
class RequestReport:
    """What became of each delivery of one request (its latest state)."""

    request_id: str
    outcomes: tuple[DeliveryEvent, ...]
    repeated: int
    """Deliveries already done by an earlier copy of the request (redelivery or duplicate)."""


@value_type
class _Planned:
    """One delivery of one request, planned and not yet claimed."""

    request: SendRequest
    district: District
    plan: RecipientPlan
    planned: PlannedDelivery
    record: DeliveryRecord


Outcome = tuple[DeliveryEvent, bool]
"""A delivery's latest event, and whether an earlier copy of its request had done it."""


async def deliver_request(request: SendRequest, deps: DeliveryDependencies) -> RequestReport:
    """Tell every recipient of one conversation message, each at most once per channel.

    Raises ``RequestRejected`` for a request that can never be processed (to dead-letter it);
    any other exception means "not done, try the whole request again" — work already
    recorded is then found by its deterministic id and not repeated.
    """
    (report,) = await deliver_requests([request], deps)
    if isinstance(report, RequestRejected):
        raise report
    return report


async def deliver_requests(
    requests: Sequence[SendRequest], deps: DeliveryDependencies
) -> list[RequestReport | RequestRejected]:
    """A batch of requests as one unit, stage by stage: their directory reads, their pure
    plans, one claim of every delivery and inbox copy, one publication of the events that
    follow, then the provider calls, concurrently (each outcome recorded as it comes, so a
    crash loses no answer the batch's slowest call is still waiting behind).

    A request that can never be processed comes back as its ``RequestRejected``; any
    exception means "not done, try the whole batch again", as for ``deliver_request``."""
    contexts = await deps.directory.request_contexts(
        [
            ContextQuery(r.district_id, tuple(recipients_to_notify(r)), r.conversation_id)
            for r in requests
        ]
    )
    reports: list[RequestReport | RequestRejected | None] = [None] * len(requests)
    admitted: list[tuple[int, SendRequest, District, dict[str, RecipientPlan]]] = []
    for index, (request, context) in enumerate(zip(requests, contexts, strict=True)):
        try:
            district = admit(request, context.district)
        except RequestRejected as rejected:
            reports[index] = rejected
            continue
        muted = context.conversation.muted_by if context.conversation else frozenset()
        plans = {
            recipient_id: plan_recipient(
                profile, district, context.points, muted=recipient_id in muted
            )
            for recipient_id in recipients_to_notify(request)
            if (profile := context.profiles.get(recipient_id)) is not None
        }
        admitted.append((index, request, district, plans))
    if admitted:
        await deps.requests.save_requests([request for _, request, _, _ in admitted])
    translated = await _all_settled(
        [
            with_translations(request, {p.language for p in plans.values()}, deps)
            for _, request, _, plans in admitted
        ]
    )

    singles: list[_Planned] = []
    owners: list[int] = []
    others: list[Awaitable[list[Outcome]]] = []
    other_owners: list[int] = []
    for (index, _, district, plans), request in zip(admitted, translated, strict=True):
        for work in _work_of(request, district, plans, deps):
            if isinstance(work, _Planned):
                singles.append(work)
                owners.append(index)
            else:
                others.append(work)
                other_owners.append(index)
    # Every delivery runs to its end even when another fails: cancelling one midway could
    # cut a provider call whose text then goes out unrecorded (a duplicate on retry) or
    # leave a database transaction open. Then the first failure is raised, and the batch
    # is retried as a whole; what was recorded meanwhile is not sent again.
    single_outcomes, other_outcomes = await asyncio.gather(
        _deliver_all(singles, deps), _all_settled(others), return_exceptions=True
    )
    if isinstance(single_outcomes, BaseException):
        raise single_outcomes
    if isinstance(other_outcomes, BaseException):
        raise other_outcomes

    per_request: dict[int, list[Outcome]] = {index: [] for index, _, _, _ in admitted}
    for index, outcome in zip(owners, single_outcomes, strict=True):
        per_request[index].append(outcome)
    for index, outcomes in zip(other_owners, other_outcomes, strict=True):
        per_request[index].extend(outcomes)
    for index, outcomes in per_request.items():
        reports[index] = RequestReport(
            request_id=requests[index].request_id,
            outcomes=tuple(event for event, _ in outcomes),
            repeated=sum(1 for _, repeated in outcomes if repeated),
        )
    return [report for report in reports if report is not None]


def _work_of(
    request: SendRequest,
    district: District,
    plans: Mapping[str, RecipientPlan],
    deps: DeliveryDependencies,
) -> Iterator[_Planned | Awaitable[list[Outcome]]]:
    """The request's deliveries: each alone, except several people on one phone or email
    address (a family's), who get one text or email for all of them when they share a
    language, and people not in the directory."""
    shared_addresses: dict[
        tuple[Channel, str, str], list[tuple[RecipientPlan, PlannedDelivery]]
    ] = {}
    for recipient_id in recipients_to_notify(request):
        plan = plans.get(recipient_id)
        if plan is None:
            yield _unknown_recipient(request, recipient_id, deps)
            continue
        for planned in plan.deliveries:
            if planned.channel is not Channel.APP and planned.needs_sending:
                bilingual = planned.channel is Channel.SMS and district.bilingual_shared_texts
                key = (planned.channel, planned.address, "*" if bilingual else plan.language)
                shared_addresses.setdefault(key, []).append((plan, planned))
            else:
                yield _Planned(
                    request, district, plan, planned, _record_for(request, district, plan, planned)
                )
    for members in shared_addresses.values():
        if len(members) == 1:
            plan, planned = members[0]
            yield _Planned(
                request, district, plan, planned, _record_for(request, district, plan, planned)
            )
        else:
            yield _deliver_shared(request, district, members, deps)


async def _all_settled(work: Sequence[Awaitable[ResultT]]) -> list[ResultT]:
    """Each result, once all are done; raises the first failure only then."""
    settled = await asyncio.gather(*work, return_exceptions=True)
    for outcome in settled:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[ResultT], settled)


async def with_translations(
    request: SendRequest, languages: set[str], deps: DeliveryDependencies
) -> SendRequest:
    """The request with a body in each of these languages it lacks one in: translated once
    per message and language (kept in the store), never longer than the translator's
    timeout. A language that can't be had is left out: its readers get the original with a
    note in their language."""
    missing = sorted(lang for lang in languages if message_text(request, lang) is None)
    if not missing:
        return request
    added = await translations(
        TranslationSource(request.message_id, request.body, request.language),
        missing,
        deps.translations,
        deps.translator,
        deps.metrics,
        deps.in_progress.translating,
    )
    return replace(request, translations={**request.translations, **added}) if added else request


async def deliver_planned(
    request: SendRequest,
    district: District,
    plan: RecipientPlan,
    planned: PlannedDelivery,
    deps: DeliveryDependencies,
) -> DeliveryEvent:
    """One delivery outside a request's first pass, e.g. the fallback after a bounce."""
    request = await with_translations(request, {plan.language}, deps)
    record = _record_for(request, district, plan, planned)
    ((event, _),) = await _deliver_all([_Planned(request, district, plan, planned, record)], deps)
    return event


async def _deliver_all(work: Sequence[_Planned], deps: DeliveryDependencies) -> list[Outcome]:
    """Each delivery once at a time in this process: a second copy (the same request twice
    in one batch, or in two batches open at once) waits for the first instead of taking its
    "queued" row for a dead attempt."""
    futures: dict[str, asyncio.Future[Outcome]] = {}
    mine_at: list[int] = []
    waits: list[tuple[int, asyncio.Future[Outcome]]] = []
    loop = asyncio.get_running_loop()
    for index, item in enumerate(work):
        delivery_id = item.record.delivery_id
        earlier = deps.in_progress.underway.get(delivery_id)
        if earlier is not None:
            waits.append((index, earlier))
            continue
        futures[delivery_id] = deps.in_progress.underway[delivery_id] = loop.create_future()
        mine_at.append(index)
    try:
        done = await _deliver_fresh([work[index] for index in mine_at], deps)
    except BaseException:
        for delivery_id, future in futures.items():
            future.set_exception(DeliveryInterrupted(delivery_id))
            # Retrieved here so an outcome nobody else awaited doesn't log "never retrieved".
            future.exception()
        raise
    finally:
        for delivery_id in futures:
            del deps.in_progress.underway[delivery_id]
    outcomes: dict[int, Outcome] = {}
    for index, outcome in zip(mine_at, done, strict=True):
        futures[work[index].record.delivery_id].set_result(outcome)
        outcomes[index] = outcome
    for index, future in waits:
        event, _ = await asyncio.shield(future)
        outcomes[index] = (event, True)
    return [outcomes[index] for index in range(len(work))]


async def _deliver_fresh(work: Sequence[_Planned], deps: DeliveryDependencies) -> list[Outcome]:
    composer = deps.composer
    outcomes: dict[int, Outcome] = {}
    claiming: list[int] = []
    for index, item in enumerate(work):
        if (answered := await _record_unrecorded(item.record, deps)) is not None:
            outcomes[index] = (answered, False)
        else:
            claiming.append(index)
    copies = {
        index: composer.message(
            work[index].request,
            work[index].district,
            work[index].plan,
            work[index].planned,
            work[index].record.delivery_id,
        )
        for index in claiming
        if _is_inbox_copy(work[index].planned)
    }
    now = deps.clock.now()
    claims = await deps.ledger.claim_deliveries(
        [
            (_as_copied(work[index].record, now), copy)
            if (copy := copies.get(index)) is not None
            else (work[index].record, None)
            for index in claiming
        ]
    )

    published: list[DeliveryEvent] = []
    sending: list[tuple[int, datetime | None]] = []
    legacy_copies: list[tuple[int, OutboundMessage]] = []
    for index, claim in zip(claiming, claims, strict=True):
        item = work[index]
        copy = copies.get(index)
        if copy is not None and not claim.is_new and claim.record.status is DeliveryStatus.QUEUED:
            legacy_copies.append((index, copy))
            continue
        if copy is None and not claim.is_new and claim.record.status is DeliveryStatus.QUEUED:
            _count_unknown_outcome(claim.record, deps)
        elif not claim.is_new:
            deps.metrics.duplicate_suppressed(claim.record.channel)
            repeated = _known_outcome(claim.record, deps.clock)
            published.append(repeated)
            outcomes[index] = (repeated, True)
            continue
        first = (
            _copied_event(claim.record, deps.clock)
            if copy is not None
            else event_for(item.record, item.record.status, deps.clock, reason=item.record.reason)
        )
        if claim.is_new:
            deps.metrics.delivery_recorded(first.channel, first.status)
            if copy is not None:
                deps.metrics.delivery_latency(
                    Channel.APP, (first.occurred_at - item.request.created_at).total_seconds()
                )
            published.append(first)
        if copy is None and item.planned.needs_sending:
            sending.append((index, _claimed_at(claim)))
        else:
            outcomes[index] = (first, False)
    # One producer call for the batch's first events: queued, skipped, suppressed, the inbox
    # copies' sent, and the known outcomes of deliveries done before.
    if published:
        await deps.events.publish(published)

    finished = await _all_settled(
        [_send_and_record(work[index], since, deps) for index, since in sending]
        + [_finish_legacy_copy(work[index], copy, deps) for index, copy in legacy_copies]
    )
    for index, event in zip(
        [index for index, _ in sending] + [index for index, _ in legacy_copies],
        finished,
        strict=True,
    ):
        outcomes[index] = (event, False)
    return [outcomes[index] for index in range(len(work))]


def _is_inbox_copy(planned: PlannedDelivery) -> bool:
    return planned.channel is Channel.APP and planned.needs_sending


def _as_copied(record: DeliveryRecord, now: datetime) -> DeliveryRecord:
    """The app inbox copy's row: written in the same transaction as its claim, so it is one
    row and one event ("sent"), and there is no provider whose answer could be lost."""
    return replace(
        record,
        status=DeliveryStatus.SENT,
        provider=INBOX,
        provider_message_id=record.delivery_id,
        sent_at=now,
    )


def _copied_event(record: DeliveryRecord, clock: Clock) -> DeliveryEvent:
    return event_for(
        record,
        DeliveryStatus.SENT,
        clock,
        provider=INBOX,
        provider_message_id=record.delivery_id,
    )


async def _send_and_record(
    item: _Planned, unknown_since: datetime | None, deps: DeliveryDependencies
) -> DeliveryEvent:
    with logging_context(delivery_id=item.record.delivery_id):
        message = deps.composer.message(
            item.request,
            item.district,
            item.plan,
            item.planned,
            item.record.delivery_id,
            resume_link=await _resume_link(item.plan, item.planned, deps),
        )
        final = await _send_counted(message, deps, item.record, unknown_since)
        await _record_final(item.request, item.record, final, message, deps)
    return final


async def _finish_legacy_copy(
    item: _Planned, copy: OutboundMessage, deps: DeliveryDependencies
) -> DeliveryEvent:
    """Claimed "queued" by a version that wrote the inbox copy after its claim, and died
    between the two: the copy (written once, by its id) and its outcome now."""
    final = _copied_event(item.record, deps.clock)
    await deps.inbox.write_inbox(copy)
    await _record_final(item.request, item.record, final, copy, deps)
    return final


async def _once(
    key: str, work: Callable[[], Coroutine[Any, Any, ResultT]], deps: DeliveryDependencies
) -> tuple[ResultT, bool]:
    """Run ``work`` once per key at a time in this process; a second copy (the same request
    twice in one batch) waits for the first instead of taking its "queued" rows for a dead
    attempt. True when this call only waited."""
    earlier = deps.in_progress.underway.get(key)
    if earlier is not None:
        return await asyncio.shield(earlier), True
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    deps.in_progress.underway[key] = outcome
    try:
        result = await work()
    except BaseException:
        outcome.set_exception(DeliveryInterrupted(key))
        # Retrieved here so an outcome nobody else awaited doesn't log "never retrieved".
        outcome.exception()
        raise
    else:
        outcome.set_result(result)
    finally:
        del deps.in_progress.underway[key]
    return result, False


async def _deliver_shared(
    request: SendRequest,
    district: District,
    members: list[tuple[RecipientPlan, PlannedDelivery]],
    deps: DeliveryDependencies,
) -> list[tuple[DeliveryEvent, bool]]:
    members = sorted(members, key=lambda member: member[0].recipient.id)
    lead_plan, lead_planned = members[0]
    lead_id = delivery_id_for(request.message_id, lead_plan.recipient.id, lead_planned.channel)
    results, waited = await _once(
        lead_id, lambda: _deliver_shared_once(request, district, members, deps), deps
    )
    return [(event, repeated or waited) for event, repeated in results]


async def _deliver_shared_once(
    request: SendRequest,
    district: District,
    members: list[tuple[RecipientPlan, PlannedDelivery]],
    deps: DeliveryDependencies,
) -> list[tuple[DeliveryEvent, bool]]:
    """One text or email for everyone on a shared address ("For Dennis and Maya: ...",
    "Hello Dennis and Maya,"), still one delivery per person, all pointing at the same
    provider message."""
    records = [_record_for(request, district, plan, planned) for plan, planned in members]
    results: dict[int, tuple[DeliveryEvent, bool]] = {}
    pending = []
    unknown_since: list[datetime] = []
    of_unknown_outcome: dict[int, DeliveryRecord] = {}
    sent_before: DeliveryRecord | None = None
    for index, record in enumerate(records):
        if (answered := await _record_unrecorded(record, deps)) is not None:
            results[index] = (answered, False)
            continue
        claim = await deps.ledger.claim_delivery(record)
        if _outcome_known(claim, deps):
            if claim.record.sent_at is not None and claim.record.provider_message_id:
                sent_before = claim.record
            results[index] = (await _repeat_known_outcome(claim.record, deps), True)
            continue
        if claim.is_new:
            deps.metrics.delivery_recorded(record.channel, record.status)
            await deps.events.publish([event_for(record, record.status, deps.clock)])
        elif (since := _claimed_at(claim)) is not None:
            unknown_since.append(since)
            of_unknown_outcome[index] = claim.record
        pending.append(index)
    if sent_before is not None:
        bilingual = members[0][1].channel is Channel.SMS and district.bilingual_shared_texts
        for index in _covered_by(sent_before, of_unknown_outcome, bilingual):
            final = event_for(
                records[index],
                DeliveryStatus.SENT,
                deps.clock,
                provider=sent_before.provider,
                provider_message_id=sent_before.provider_message_id,
            )
            deps.metrics.duplicate_suppressed(final.channel)
            await _record_answer(records[index], UnrecordedOutcome(final, None), deps)
            results[index] = (final, False)
            pending.remove(index)
    if pending:
        lead_plan, lead_planned = members[pending[0]]
        names = deps.catalogs.join_names(
            lead_plan.language, [first_name(members[i][0].recipient) for i in pending]
        )
        message = deps.composer.message(
            request,
            district,
            lead_plan,
            lead_planned,
            records[pending[0]].delivery_id,
            label_name=names,
        )
        languages = list(dict.fromkeys(members[i][0].language for i in pending))
        if len(languages) > 1 and message.sms is not None:
            first_names = [first_name(members[i][0].recipient) for i in pending]
            message = replace(
                message,
                sms=deps.composer.bilingual_sms(request, district, first_names, languages),
            )
        sent = await _send_counted(
            message, deps, records[pending[0]], min(unknown_since, default=None)
        )
        finals = {
            index: event_for(
                records[index],
                sent.status,
                deps.clock,
                reason=sent.reason,
                provider=sent.provider,
                provider_message_id=sent.provider_message_id,
            )
            for index in pending
        }
        # One text answered for everyone on the phone: all their answers are kept before
        # any is recorded, so a failure midway loses none of them.
        for index, final in finals.items():
            deps.in_progress.unrecorded[records[index].delivery_id] = _answer(final, message)
        for index, final in finals.items():
            await _record_final(request, records[index], final, message, deps)
            results[index] = (final, False)
    return [results[index] for index in range(len(members))]


def _covered_by(
    sent: DeliveryRecord, of_unknown_outcome: Mapping[int, DeliveryRecord], bilingual: bool
) -> list[int]:
    """The members of a shared address whose outcome is unknown but whom ``sent`` (another
    member's recorded text) already named: every attempt claims each member before sending
    to all those not yet settled, so the attempt that sent it named them, and was cut off
    while recording their answers one by one. Sending again would text the family twice
    ("For Dennis: ..." after "For Carmen and Dennis: ..."), and no lookup finds the first,
    whose words differ. A member claimed for another address or language (the directory
    changed between attempts) was not in that text."""
    return [
        index
        for index, record in of_unknown_outcome.items()
        if record.address == sent.address and (bilingual or record.language == sent.language)
    ]


def _record_for(
    request: SendRequest, district: District, plan: RecipientPlan, planned: PlannedDelivery
) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=delivery_id_for(request.message_id, plan.recipient.id, planned.channel),
        request_id=request.request_id,
        message_id=request.message_id,
        conversation_id=request.conversation_id,
        recipient_id=plan.recipient.id,
        channel=planned.channel,
        address=planned.address,
        status=planned.outcome or DeliveryStatus.QUEUED,
        reason=planned.reason,
        route=planned.route,
        fallback_from=planned.fallback_from,
        language=plan.language,
        district_id=district.id,
    )


async def _send_counted(
    message: OutboundMessage,
    deps: DeliveryDependencies,
    record: DeliveryRecord,
    unknown_since: datetime | None = None,
) -> DeliveryEvent:
    """Sends ``message``, unless an earlier attempt of unknown outcome (claimed at
    ``unknown_since``) is found at the provider to have sent it already."""
    found = await _found_sent(message, record, unknown_since, deps) if unknown_since else None
    sent = found or await _send(message, record, deps)
    if message.sms is not None and sent.status is DeliveryStatus.SENT:
        deps.metrics.sms_sent(message.sms.encoding, message.sms.segments)
    return sent


async def _record_final(
    request: SendRequest,
    record: DeliveryRecord,
    final: DeliveryEvent,
    message: OutboundMessage,
    deps: DeliveryDependencies,
) -> None:
    if final.status is DeliveryStatus.SENT:
        deps.metrics.delivery_latency(
            record.channel, (final.occurred_at - request.created_at).total_seconds()
        )
    await _record_answer(record, _answer(final, message), deps)


def _answer(final: DeliveryEvent, message: OutboundMessage) -> UnrecordedOutcome:
    # What the text cost goes in with the outcome: no extra write on the hot path.
    cost = (message.sms.segments, message.sms.encoding) if message.sms else None
    return UnrecordedOutcome(final, cost)


async def _record_answer(
    record: DeliveryRecord, outcome: UnrecordedOutcome, deps: DeliveryDependencies
) -> None:
    """Records the provider's answer; kept in memory until that worked, so that a retry of
    the batch after a database outage records it instead of texting the person again."""
    deps.in_progress.unrecorded[record.delivery_id] = outcome
    await deps.ledger.record_event(outcome.event, sms_cost=outcome.sms_cost)
    del deps.in_progress.unrecorded[record.delivery_id]
    deps.metrics.delivery_recorded(record.channel, outcome.event.status)
    await deps.events.publish([outcome.event])


async def _record_unrecorded(
    record: DeliveryRecord, deps: DeliveryDependencies
) -> DeliveryEvent | None:
    """The answer an earlier try got for this delivery and could not record, now recorded;
    None when there is none."""
    earlier = deps.in_progress.unrecorded.get(record.delivery_id)
    if earlier is None:
        return None
    await _record_answer(record, earlier, deps)
    return earlier.event


def _outcome_known(claim: Claim, deps: DeliveryDependencies) -> bool:
    """Whether an earlier copy of the request already settled this delivery. Anything past
    "queued" was recorded after the provider answered (or instead of sending): never sent
    again. Still queued means the attempt that claimed it died mid-send and its outcome is
    unknown: sending again risks a duplicate, not sending risks a lost safety notice, so we
    ask the provider where we can (``_found_sent``), else send — and count it."""
    if claim.is_new:
        return False
    if claim.record.status is not DeliveryStatus.QUEUED:
        return True
    _count_unknown_outcome(claim.record, deps)
    return False


def _count_unknown_outcome(record: DeliveryRecord, deps: DeliveryDependencies) -> None:
    deps.metrics.unknown_outcome(record.channel)
    log.warning(
        "delivery %s: an earlier attempt's outcome is unknown (attempt %d)",
        record.delivery_id,
        record.attempts,
    )


async def _sent_for_another_message(
    receipt: ProviderReceipt, record: DeliveryRecord, deps: DeliveryDependencies
) -> bool:
    # The same words sent to the same phone for another message (a reminder repeated) are
    # recorded as that message's: not taken for ours.
    if receipt.provider_message_id is None:
        return False
    owners = await deps.ledger.deliveries_by_provider_id(
        record.channel, receipt.provider_message_id
    )
    return any(owner.message_id != record.message_id for owner in owners)


def _claimed_at(claim: Claim) -> datetime | None:
    """When an earlier attempt of unknown outcome claimed the delivery; None for a new one."""
    return None if claim.is_new else claim.record.created_at


async def _found_sent(
    message: OutboundMessage,
    record: DeliveryRecord,
    since: datetime,
    deps: DeliveryDependencies,
) -> DeliveryEvent | None:
    """The delivery recorded as sent when its provider shows that an earlier attempt (one
    that died before recording the answer) sent it; None: send it (again)."""
    lookups = deps.lookups
    provider = lookups.providers.get(message.channel)
    if provider is None:
        return None
    if not lookups.take():
        deps.metrics.unknown_outcome_lookup(message.channel, "over_budget")
        return None
    try:
        receipt = await deps.guarded_lookup(provider).find_sent(message, since)
    except ProviderError as error:
        deps.metrics.unknown_outcome_lookup(message.channel, "failed")
        log.warning("delivery %s: can't tell if it went out: %s", record.delivery_id, error)
        return None
    if receipt is None or await _sent_for_another_message(receipt, record, deps):
        deps.metrics.unknown_outcome_lookup(message.channel, "not_found")
        return None
    deps.metrics.unknown_outcome_lookup(message.channel, "found")
    return event_for(
        record,
        DeliveryStatus.SENT,
        deps.clock,
        provider=receipt.provider,
        provider_message_id=receipt.provider_message_id,
    )


async def _repeat_known_outcome(
    record: DeliveryRecord, deps: DeliveryDependencies
) -> DeliveryEvent:
    """A redelivered request: send nothing, but publish the known outcome again."""
    deps.metrics.duplicate_suppressed(record.channel)
    event = _known_outcome(record, deps.clock)
    await deps.events.publish([event])
    return event


def _known_outcome(record: DeliveryRecord, clock: Clock) -> DeliveryEvent:
    """The recorded outcome as an event again (same event id), for a redelivered request:
    its first copy may have stopped between recording the outcome and publishing it."""
    event = event_for(
        record,
        record.status,
        clock,
        reason=record.reason,
        provider=record.provider,
        provider_message_id=record.provider_message_id,
    )
    return replace(event, occurred_at=record.updated_at or event.occurred_at)


async def _unknown_recipient(
    request: SendRequest, recipient_id: str, deps: DeliveryDependencies
) -> list[Outcome]:
    # Not in the directory (yet): nothing to resolve, so the delivery is recorded on the app
    # channel as skipped, where support can see it.
    record = DeliveryRecord(
        delivery_id=delivery_id_for(request.message_id, recipient_id, Channel.APP),
        request_id=request.request_id,
        message_id=request.message_id,
        conversation_id=request.conversation_id,
        recipient_id=recipient_id,
        channel=Channel.APP,
        address=None,
        status=DeliveryStatus.SKIPPED,
        reason=Reason.UNKNOWN_RECIPIENT,
        route=None,
        fallback_from=None,
        language=None,
    )
    claim = await deps.ledger.claim_delivery(record)
    if not claim.is_new:
        return [(await _repeat_known_outcome(claim.record, deps), True)]
    event = event_for(record, record.status, deps.clock, reason=record.reason)
    deps.metrics.delivery_recorded(record.channel, record.status)
    await deps.events.publish([event])
    return [(event, False)]


async def _resume_link(
    plan: RecipientPlan, planned: PlannedDelivery, deps: DeliveryDependencies
) -> str | None:
    # Only the first text standing in for a failing email carries the link: enough for the
    # person to act on, without repeating it in every message while the inbox is broken.
    # A one-off failure (the address still active) needs no link from the person.
    email = plan.recipient.email
    if (
        deps.resume_links is None
        or planned.channel is not Channel.SMS
        or planned.fallback_from is not Channel.EMAIL
        or email is None
    ):
        return None
    points = await deps.contact_points.contact_points([(Channel.EMAIL, email)])
    if contact_point(points, Channel.EMAIL, email).status is not ContactStatus.FAILING:
        return None
    if not await deps.contact_points.mark_resume_link_sent(email):
        return None
    return deps.resume_links.url_for(email, deps.clock.now())


async def _send(
    message: OutboundMessage, record: DeliveryRecord, deps: DeliveryDependencies
) -> DeliveryEvent:
    try:
        receipt = await deps.guarded(message.channel).send(message)
    except PermanentProviderError as error:
        return event_for(
            record, DeliveryStatus.FAILED, deps.clock, reason=error.reason, provider=error.provider
        )
    except (TransientProviderError, UnknownOutcomeError, ProviderUnavailableError) as error:
        if isinstance(error, UnknownOutcomeError):
            # It may have gone out: not sent again on this channel, but failing over may
            # reach the person twice — preferred to a lost notice.
            deps.metrics.unknown_outcome(message.channel)
        return event_for(
            record,
            DeliveryStatus.FAILED,
            deps.clock,
            reason=Reason.PROVIDER_ERROR,
            provider=error.provider,
        )
    return event_for(
        record,
        DeliveryStatus.SENT,
        deps.clock,
        provider=receipt.provider,
        provider_message_id=receipt.provider_message_id,
    )


def event_for(
    record: DeliveryRecord,
    status: DeliveryStatus,
    clock: Clock,
    *,
    reason: Reason | None = None,
    provider: str | None = None,
    provider_message_id: str | None = None,
) -> DeliveryEvent:
    """The delivery's change to ``status``, now; its id is stable per (delivery, status)."""
    return DeliveryEvent(
        event_id=event_id_for(record.delivery_id, status),
        delivery_id=record.delivery_id,
        message_id=record.message_id,
        conversation_id=record.conversation_id,
        recipient_id=record.recipient_id,
        channel=record.channel,
        status=status,
        reason=reason,
        fallback_from=record.fallback_from,
        route=record.route,
        provider=provider,
        provider_message_id=provider_message_id,
        language=record.language,
        occurred_at=clock.now(),
    )
