"""Plain-language answers to "why did this go by text?", for support staff (in English).

E.g. "email failing since Nov 3, 07:42 — mailbox full — so sent by text".
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.domain.model import Channel, ContactPoint, ContactStatus, Reason, Route

CHANNEL_WORDS = {Channel.SMS: "text", Channel.EMAIL: "email", Channel.APP: "the app"}

REASON_WORDS = {
    Reason.MAILBOX_FULL: "mailbox full",
    Reason.HARD_BOUNCE: "address does not exist",
    Reason.BLOCKED: "blocked by the receiving server",
    Reason.SPAM_REPORT: "marked as spam",
    Reason.INVALID_ADDRESS: "not a valid address",
    Reason.UNREACHABLE: "could not be reached",
    Reason.OPTED_OUT: "opted out",
    Reason.PROVIDER_ERROR: "the provider failed",
    Reason.UNKNOWN_RECIPIENT: "not in the directory",
    Reason.NO_CONTACT: "no phone or email on file",
    Reason.DEFERRED_TOO_LONG: "not delivered in time",
    Reason.MUTED: "conversation muted",
}

STATUS_BADGES = {
    ContactStatus.ACTIVE: "active",
    ContactStatus.FAILING: "failing",
    ContactStatus.OPTED_OUT: "opted out",
}


def channel_word(channel: Channel) -> str:
    return CHANNEL_WORDS[channel]


def reason_words(reason: Reason | None) -> str:
    return REASON_WORDS.get(reason, "unknown reason") if reason else "no reason given"


def local_time(moment: datetime, timezone: str) -> str:
    """ "Nov 3, 07:42" in the district's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = moment.astimezone(zone)
    return f"{local:%b} {local.day}, {local:%H:%M}"


def contact_point_badge(point: ContactPoint, timezone: str) -> str:
    """ "active", "failing: mailbox full since Nov 3, 07:42", "opted out since …"."""
    badge = STATUS_BADGES[point.status]
    if point.status is ContactStatus.FAILING:
        badge += f": {reason_words(point.reason)}"
    if point.status is not ContactStatus.ACTIVE and point.since is not None:
        badge += f" since {local_time(point.since, timezone)}"
    return badge


def explain_route(
    route: Route | None,
    channel: Channel,
    fallback_from: Channel | None,
    *,
    timezone: str,
    replaced_point: ContactPoint | None = None,
    replaced_reason: Reason | None = None,
) -> str:
    """Why a delivery went out on its channel.

    ``replaced_point`` is the state of the address it stood in for (for contact_point_failing);
    ``replaced_reason`` what happened to the delivery it replaced (for the failover routes).
    """
    sent = f"sent by {channel_word(channel)}"
    instead = channel_word(fallback_from) if fallback_from else "the usual channel"
    if route is Route.PREFERRED:
        return f"{sent} — their preferred channel"
    if route is Route.ROLE_DEFAULT:
        return f"{sent} — the district's default for their role"
    if route is Route.DISTRICT_DEFAULT:
        return f"{sent} — the district's default for people with both email and phone"
    if route is Route.ONLY_CONTACT:
        return f"{sent} — the only contact on file"
    if route is Route.APP_ONLY:
        return "in the app only — no phone or email on file"
    if route is Route.APP_INBOX:
        return "copy in the app inbox — every message goes there"
    if route is Route.CONTACT_POINT_FAILING:
        if replaced_point is not None and replaced_point.status is not ContactStatus.ACTIVE:
            state = "opted out" if replaced_point.status is ContactStatus.OPTED_OUT else "failing"
            since = (
                f" since {local_time(replaced_point.since, timezone)}"
                if replaced_point.since
                else ""
            )
            detail = (
                f" — {reason_words(replaced_point.reason)}"
                if replaced_point.status is ContactStatus.FAILING
                else ""
            )
            return f"{instead} {state}{since}{detail} — so {sent}"
        return f"{instead} was failing or opted out at the time — so {sent}"
    if route is Route.FAILOVER_BOUNCE:
        return f"{instead} bounced ({reason_words(replaced_reason)}) — so {sent} instead"
    if route is Route.FAILOVER_REJECTED:
        return f"{instead} was refused ({reason_words(replaced_reason)}) — so {sent} instead"
    if route is Route.FAILOVER_DEFERRED_TOO_LONG:
        return f"{instead} was still not delivered after the time limit — so {sent} instead"
    if route is Route.FAILOVER_PROVIDER_ERROR:
        return f"the {instead} provider failed — so {sent} instead"
    return sent
