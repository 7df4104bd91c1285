"""Changing an address's status by hand: support's reset, the person's own reset (resume
link, tracked click, START), and their STOP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from enum import StrEnum

from notifier.domain.model import Channel, ContactPoint, ContactStatus, Reason
from notifier.domain.records import AuditEntry
from notifier.domain.resolution import choose_language, contact_point
from notifier.domain.values import value_type
from notifier.ports import AuditLog, Clock, ContactPoints, Directory, ProviderError, Suppressions

log = logging.getLogger(__name__)

SUPPRESSION_ATTEMPTS = 3

ANY_STATUS = frozenset(ContactStatus)
"""Support's reset: from any status (on an active address it clears the provider's block
list again), except an SMS STOP, which only the person's START lifts."""
RESUME_LINK_LIFTS = frozenset({ContactStatus.FAILING})
"""The resume link lifts only a failing address. An opt-out is lifted by the person's START
(a number) or support's reset (an email), never by a link whoever holds the text can open."""


@value_type
class Actor:
    name: str
    """Who: a token's name, or "person" for the address's owner."""
    scope: str
    """As what: support, admin, self-service, or how the person acted (resume link, ...)."""

    @classmethod
    def person(cls, how: str) -> Actor:
        return cls("person", how)

    @property
    def is_person(self) -> bool:
        return self.name == "person"


@value_type
class ContactPointDependencies:
    contact_points: ContactPoints
    audit: AuditLog
    directory: Directory
    """Who uses an address, and their district: the language a resume link's page is in."""
    suppressions: Mapping[Channel, Suppressions]
    clock: Clock


class SuppressionOutcome(StrEnum):
    REMOVED = "removed"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"


@value_type
class ResetResult:
    previous: ContactPoint
    suppression: SuppressionOutcome
    suppression_detail: str | None = None
    lifted: bool = True
    """False: the address's status was not one the reset lifts, and nothing was written,
    cleared at the provider or audited."""


class ResetRefused(Exception):
    """The reset is not allowed (e.g. support lifting an SMS STOP only the person may lift)."""


async def reset_contact_point(
    channel: Channel,
    address: str,
    actor: Actor,
    note: str | None,
    request_id: str | None,
    deps: ContactPointDependencies,
    *,
    lifts: frozenset[ContactStatus] = ANY_STATUS,
) -> ResetResult:
    """Back to active, so the preferred channel is used again; audited. Clears the provider's
    own suppression of the address (SendGrid drops mail to a bounced address until then);
    a failure to do so is reported, not swallowed. From a status outside ``lifts`` it does
    nothing and says so (``lifted`` is False), which makes such a reset safe to repeat."""
    previous = contact_point(
        await deps.contact_points.contact_points([(channel, address)]), channel, address
    )
    if previous.status not in lifts:
        return ResetResult(previous, SuppressionOutcome.NOT_APPLICABLE, lifted=False)
    if (
        channel is Channel.SMS
        and previous.status is ContactStatus.OPTED_OUT
        and not actor.is_person
    ):
        # Carriers require that a STOP is lifted by the person's own START.
        raise ResetRefused(
            "this number replied STOP; only its owner can undo that by texting START"
        )

    now = deps.clock.now()
    await deps.contact_points.set_contact_point(
        ContactPoint(channel, address, ContactStatus.ACTIVE, None, now)
    )
    suppression, detail = await _clear_suppression(channel, address, deps)
    await deps.audit.append_audit(
        AuditEntry(
            occurred_at=now,
            actor=actor.name,
            scope=actor.scope,
            action="reset_contact_point",
            channel=channel,
            address=address,
            note=note,
            request_id=request_id,
            outcome=f"{previous.status} -> active; provider suppression {suppression}"
            + (f": {detail}" if detail else ""),
        )
    )
    return ResetResult(previous, suppression, detail)


@value_type
class ResumeLinkTarget:
    """What the person's resume link finds: the address and who reads the page."""

    point: ContactPoint
    language: str | None
    """The language of the people using the address (the first's, as its district offers
    it); None when nobody in the directory uses it."""


async def resume_link_target(address: str, deps: ContactPointDependencies) -> ResumeLinkTarget:
    """Reads only: opening the link must change nothing (link previews open it too)."""
    point = contact_point(
        await deps.contact_points.contact_points([(Channel.EMAIL, address)]), Channel.EMAIL, address
    )
    people = await deps.directory.recipients_using(Channel.EMAIL, address)
    district = await deps.directory.district(people[0].district_id) if people else None
    language = choose_language(people[0].language, district) if district else None
    return ResumeLinkTarget(point, language)


async def resume_email(
    address: str, request_id: str | None, deps: ContactPointDependencies
) -> ResetResult:
    """The person's own reset from the link in a fallback text: a failing address becomes
    active; an active one (a second press) or an opted-out one is left as it is."""
    return await reset_contact_point(
        Channel.EMAIL,
        address,
        Actor.person("resume link"),
        None,
        request_id,
        deps,
        lifts=RESUME_LINK_LIFTS,
    )


async def _clear_suppression(
    channel: Channel, address: str, deps: ContactPointDependencies
) -> tuple[SuppressionOutcome, str | None]:
    suppressions = deps.suppressions.get(channel)
    if suppressions is None:
        return SuppressionOutcome.NOT_APPLICABLE, None
    for attempt in range(1, SUPPRESSION_ATTEMPTS + 1):
        try:
            await suppressions.remove(address)
        except ProviderError as error:
            if attempt == SUPPRESSION_ATTEMPTS:
                log.warning("could not clear the provider's suppression: %s", error)
                return SuppressionOutcome.FAILED, str(error)
            await asyncio.sleep(0.2 * 2**attempt)
        else:
            return SuppressionOutcome.REMOVED, None
    raise AssertionError("unreachable")


class SmsKeyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Twilio's standard opt-out, opt-in and help keywords (matched on the whole message, any
# case): https://help.twilio.com/articles/223134027
KEYWORDS = {
    **dict.fromkeys(
        ("stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"),
        SmsKeyword.STOP,
    ),
    **dict.fromkeys(("start", "yes", "unstop"), SmsKeyword.START),
    **dict.fromkeys(("help", "info"), SmsKeyword.HELP),
}


def sms_keyword(body: str) -> SmsKeyword | None:
    return KEYWORDS.get(" ".join(body.split()).casefold())


async def apply_sms_keyword(
    phone: str, keyword: SmsKeyword, request_id: str | None, deps: ContactPointDependencies
) -> None:
    if keyword is SmsKeyword.STOP:
        now = deps.clock.now()
        await deps.contact_points.set_contact_point(
            ContactPoint(Channel.SMS, phone, ContactStatus.OPTED_OUT, Reason.OPTED_OUT, now)
        )
        await deps.audit.append_audit(
            AuditEntry(
                now, "person", "sms keyword", "opt_out", Channel.SMS, phone, "STOP", request_id
            )
        )
    elif keyword is SmsKeyword.START:
        await reset_contact_point(
            Channel.SMS, phone, Actor.person("sms keyword START"), None, request_id, deps
        )
