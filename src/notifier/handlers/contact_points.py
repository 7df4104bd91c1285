"""Changing an address's status by hand: support's reset, the person's own reset (resume
link, tracked click, START), and their STOP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from notifier.domain.model import Channel, ContactPoint, ContactStatus, Reason
from notifier.domain.resolution import contact_point
from notifier.ports import AuditEntry, Clock, ProviderError, Store, Suppressions

log = logging.getLogger(__name__)

SUPPRESSION_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class ContactPointDependencies:
    store: Store
    suppressions: Mapping[Channel, Suppressions]
    clock: Clock


class SuppressionOutcome(StrEnum):
    REMOVED = "removed"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ResetResult:
    previous: ContactPoint
    suppression: SuppressionOutcome
    suppression_detail: str | None = None


class ResetRefused(Exception):
    """The reset is not allowed (e.g. support lifting an SMS STOP only the person may lift)."""


async def reset_contact_point(
    channel: Channel,
    address: str,
    actor: Actor,
    note: str | None,
    request_id: str | None,
    deps: ContactPointDependencies,
) -> ResetResult:
    """Back to active, so the preferred channel is used again; audited. Clears the provider's
    own suppression of the address (SendGrid drops mail to a bounced address until then);
    a failure to do so is reported, not swallowed."""
    previous = contact_point(
        await deps.store.contact_points([(channel, address)]), channel, address
    )
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
    await deps.store.set_contact_point(
        ContactPoint(channel, address, ContactStatus.ACTIVE, None, now)
    )
    suppression, detail = await _clear_suppression(channel, address, deps)
    await deps.store.append_audit(
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
        await deps.store.set_contact_point(
            ContactPoint(Channel.SMS, phone, ContactStatus.OPTED_OUT, Reason.OPTED_OUT, now)
        )
        await deps.store.append_audit(
            AuditEntry(
                now, "person", "sms keyword", "opt_out", Channel.SMS, phone, "STOP", request_id
            )
        )
    elif keyword is SmsKeyword.START:
        await reset_contact_point(
            Channel.SMS, phone, Actor.person("sms keyword START"), None, request_id, deps
        )
