"""Vendor reports in the contract's terms: a SendGrid event, a Twilio status callback or the
error code of a send Twilio refused becomes a ``Classification`` (the delivery's new status,
the reason, what the report says about the address, whether to send this message again on
the other channel).

Every decision is a row in a table below, next to the vendor page it comes from. Both vendors
add events and codes without notice, so whatever a table doesn't know lands in a safe
default: an unknown event changes nothing, an unknown failure fails this one message over
without judging the address.

Matching ignores case and surrounding or repeated whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from notifier.domain.lifecycle import IGNORED, Classification, ContactEffect
from notifier.domain.model import DeliveryStatus, Reason
from notifier.domain.values import value_type

# --- SendGrid ---------------------------------------------------------------------------------

SENDGRID_EVENTS: Mapping[str, Classification] = MappingProxyType(
    {
        # Event Webhook Reference, "Delivery events":
        # https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
        # "processed": accepted by SendGrid, not yet by the recipient's server.
        "processed": IGNORED,
        "delivered": Classification(DeliveryStatus.DELIVERED),
        # SendGrid itself retries a deferral for up to 72 hours; the service's
        # deferred-too-long timer decides when to stop waiting, not this event.
        "deferred": Classification(DeliveryStatus.DEFERRED),
        # "bounce" and "dropped" carry details: SENDGRID_BOUNCE_CLASSIFICATIONS and
        # SENDGRID_DROP_REASONS.
        #
        # Event Webhook Reference, "Engagement events":
        # https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
        "open": IGNORED,
        # A tracked link followed: the mailbox works. The caller applies it only to an
        # address that is failing (contract: "Contact point status").
        "click": Classification(None, contact=ContactEffect.WORKS),
        # The message was delivered, so its status stands; the address is opted out.
        "spamreport": Classification(None, Reason.SPAM_REPORT, ContactEffect.OPTED_OUT),
        "unsubscribe": Classification(None, Reason.OPTED_OUT, ContactEffect.OPTED_OUT),
        "group_unsubscribe": Classification(None, Reason.OPTED_OUT, ContactEffect.OPTED_OUT),
        # Opting back in to one group doesn't undo an account-wide unsubscribe; only
        # support's reset lifts it (the person's resume link lifts a failing address only).
        "group_resubscribe": IGNORED,
    }
)
"""SendGrid Event Webhook ``event`` names whose outcome needs nothing but the name."""

SENDGRID_DEFERRED_MAILBOX_FULL = Classification(DeliveryStatus.DEFERRED, Reason.MAILBOX_FULL)
"""A deferral whose response says the mailbox is full: still only deferred (SendGrid keeps
retrying), but the deferred-too-long timer reports the reason when it fails over."""

_BOUNCED_MAILBOX_FULL = Classification(
    DeliveryStatus.BOUNCED, Reason.MAILBOX_FULL, ContactEffect.FAILING, fail_over=True
)
_BOUNCED_BLOCKED = Classification(
    DeliveryStatus.BOUNCED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
)

SENDGRID_BOUNCE_DEFAULT = Classification(
    DeliveryStatus.BOUNCED, Reason.UNREACHABLE, ContactEffect.NONE, fail_over=True
)
"""A bounce whose classification says nothing about the address (technical, unclassified,
missing or new): this message fails over, the address stays as it is."""

SENDGRID_BOUNCE_CLASSIFICATIONS: Mapping[str, Classification] = MappingProxyType(
    {
        # Keys are case-insensitive prefixes: the Event Webhook's ``bounce_classification``
        # and the Bounces API spell the same class differently ("Mailbox Unavailable" and
        # "Mailbox Unavailable - Mailbox Full", "Technical Failure" and "Technical").
        # No key may be a prefix of another.
        # https://www.twilio.com/docs/sendgrid/ui/analytics-and-reporting/bounce-and-block-classifications
        "mailbox unavailable": _BOUNCED_MAILBOX_FULL,
        "invalid address": Classification(
            DeliveryStatus.BOUNCED, Reason.HARD_BOUNCE, ContactEffect.FAILING, fail_over=True
        ),
        # Blocks: the receiving server refuses mail from us to this address. SendGrid doesn't
        # suppress blocked addresses, but until the block lifts every email to it would fail.
        "reputation": _BOUNCED_BLOCKED,
        "content": _BOUNCED_BLOCKED,
        "frequency": _BOUNCED_BLOCKED,  # "Frequency or Volume Too High"
        "technical": SENDGRID_BOUNCE_DEFAULT,  # "Technical Failure": DNS, TLS, connection
        "unclassified": SENDGRID_BOUNCE_DEFAULT,
    }
)
"""SendGrid ``bounce`` events (``type`` "bounce" or "blocked") by ``bounce_classification``."""

SENDGRID_BOUNCE_TEXT_MAILBOX_FULL = _BOUNCED_MAILBOX_FULL
"""A bounce SendGrid didn't classify by address whose reply says the mailbox is full (e.g.
"552 5.2.2 ... over quota"): a bounce is permanent, so the address is failing."""

SENDGRID_DROP_REASONS: Mapping[str, Classification] = MappingProxyType(
    {
        # Whole reasons, not prefixes: "Invalid" (the address is on the Invalid Emails list)
        # must not swallow "Invalid SMTPAPI header", which is our request's fault.
        # Event Webhook Reference, "Dropped" (reason: why SendGrid refused to send):
        # https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
        "bounced address": Classification(
            DeliveryStatus.FAILED, Reason.HARD_BOUNCE, ContactEffect.FAILING, fail_over=True
        ),
        "invalid": Classification(
            DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, ContactEffect.FAILING, fail_over=True
        ),
        "invalid address": Classification(
            DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, ContactEffect.FAILING, fail_over=True
        ),
        "unsubscribed address": Classification(
            DeliveryStatus.FAILED, Reason.OPTED_OUT, ContactEffect.OPTED_OUT, fail_over=True
        ),
        "spam reporting address": Classification(
            DeliveryStatus.FAILED, Reason.SPAM_REPORT, ContactEffect.OPTED_OUT, fail_over=True
        ),
    }
)
"""SendGrid ``dropped`` events by ``reason``: SendGrid refused to send at all."""

SENDGRID_DROP_DEFAULT = Classification(
    DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, ContactEffect.NONE, fail_over=True
)
"""Any other drop ("Invalid SMTPAPI header", "Spam Content", "Recipient List over Package
Quota", ...) is about our request or account, not the address."""

MAILBOX_FULL_PHRASES: tuple[str, ...] = (
    "mailbox full",
    "mailbox is full",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",  # RFC 5321 552: "exceeded storage allocation"
    # Not "insufficient system storage" (RFC 5321 452): that is the server's disk.
    "insufficient storage",
)
"""Lower-case wordings receiving servers use for a full mailbox."""

# RFC 3463 X.2.2 "Mailbox full", as 4.2.2 (transient) or 5.2.2 (permanent); the lookarounds keep
# "10.4.2.25" in an IP address from matching.
_MAILBOX_FULL_STATUS = re.compile(r"(?<![\d.])[45]\.2\.2(?![\d.])")


def is_mailbox_full_text(text: str | None) -> bool:
    """Whether an SMTP reply or reason text says the recipient's mailbox is full.

    A bare 452 or 552 isn't enough (452 also means too many recipients, 552 a message too
    large); the enhanced status X.2.2 or the wording is."""
    normalized = _normalize(text)
    if _MAILBOX_FULL_STATUS.search(normalized):
        return True
    return any(phrase in normalized for phrase in MAILBOX_FULL_PHRASES)


def classify_sendgrid(
    event: str,
    *,
    type: str | None = None,
    bounce_classification: str | None = None,
    reason: str | None = None,
    smtp_status: str | None = None,
) -> Classification:
    """One SendGrid Event Webhook event in the contract's terms.

    ``type`` ("bounce" or "blocked"; there is no separate blocked event) doesn't change the
    outcome: SendGrid classifies both, and the classification says whose fault it was.
    ``reason`` is the event's reason or response text, ``smtp_status`` its enhanced status.
    """
    name = _normalize(event)
    text = " ".join(part for part in (reason, smtp_status) if part)
    if name == "bounce":
        return _classify_bounce(bounce_classification, text)
    if name == "dropped":
        return SENDGRID_DROP_REASONS.get(_normalize(reason), SENDGRID_DROP_DEFAULT)
    if name == "deferred" and is_mailbox_full_text(text):
        return SENDGRID_DEFERRED_MAILBOX_FULL
    return SENDGRID_EVENTS.get(name, IGNORED)


def _classify_bounce(bounce_classification: str | None, text: str) -> Classification:
    normalized = _normalize(bounce_classification)
    classification = next(
        (
            row
            for prefix, row in SENDGRID_BOUNCE_CLASSIFICATIONS.items()
            if normalized and normalized.startswith(prefix)
        ),
        SENDGRID_BOUNCE_DEFAULT,
    )
    if classification.contact is ContactEffect.NONE and is_mailbox_full_text(text):
        return SENDGRID_BOUNCE_TEXT_MAILBOX_FULL
    return classification


# --- Twilio -----------------------------------------------------------------------------------

TWILIO_STATUSES: Mapping[str, Classification] = MappingProxyType(
    {
        # https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
        # Still on Twilio's side: nothing to report.
        "accepted": IGNORED,
        "scheduled": IGNORED,
        "queued": IGNORED,
        "sending": IGNORED,
        # Handed to the carrier. Harmless when late: statuses only move forward (lifecycle).
        "sent": Classification(DeliveryStatus.SENT),
        "delivered": Classification(DeliveryStatus.DELIVERED),
        "read": IGNORED,  # WhatsApp/RCS read receipt; the delivery is already final
        "canceled": Classification(
            DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, ContactEffect.NONE, fail_over=True
        ),
    }
)
"""Twilio ``MessageStatus`` values whose outcome needs no ``ErrorCode``."""

TWILIO_FAILURE_STATUSES = frozenset({"undelivered", "failed"})
"""Outcomes decided by ``ErrorCode`` (TWILIO_ERROR_CODES). Both become ``failed``: the
contract has no "undelivered"."""


@value_type
class ErrorCode:
    """One row of a vendor's error-code table: the code, the vendor's title for it and the
    page that says so, and what it means for the delivery and the address."""

    code: int
    title: str
    doc: str
    outcome: Classification


_FAILED_OPTED_OUT = Classification(
    DeliveryStatus.FAILED, Reason.OPTED_OUT, ContactEffect.OPTED_OUT, fail_over=True
)
_FAILED_INVALID_ADDRESS = Classification(
    DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, ContactEffect.FAILING, fail_over=True
)
_FAILED_UNREACHABLE_IF_REPEATED = Classification(
    DeliveryStatus.FAILED, Reason.UNREACHABLE, ContactEffect.FAILING_IF_REPEATED, fail_over=True
)
_FAILED_BLOCKED = Classification(
    DeliveryStatus.FAILED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
)

TWILIO_ERROR_DEFAULT = Classification(
    DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, ContactEffect.NONE, fail_over=True
)
"""A failure whose code is missing or not in TWILIO_ERROR_CODES. Twilio warns that codes
change, so a new one must fail this message over without judging the number. As the reason
of a refused send, PROVIDER_ERROR says our account or request is at fault, and counts
towards opening Twilio's circuit."""

_TWILIO_ERROR_ROWS = (
    # Codes of a send the API refuses (its 4xx answer); a status callback may carry them too.
    ErrorCode(
        21610,
        "Attempt to send to unsubscribed recipient (the number replied STOP)",
        "https://www.twilio.com/docs/api/errors/21610",
        _FAILED_OPTED_OUT,
    ),
    ErrorCode(
        21211,
        "Invalid 'To' phone number",
        "https://www.twilio.com/docs/api/errors/21211",
        _FAILED_INVALID_ADDRESS,
    ),
    ErrorCode(
        21614,
        "'To' number is not a valid mobile number",
        "https://www.twilio.com/docs/api/errors/21614",
        _FAILED_INVALID_ADDRESS,
    ),
    ErrorCode(
        21635,
        "'To' number cannot be a landline",
        "https://www.twilio.com/docs/api/errors/21635",
        _FAILED_INVALID_ADDRESS,
    ),
    # The combination of this number and our sender can't be routed (sender id rules of the
    # destination, a carrier Twilio doesn't reach): about the number as we send to it, but
    # not proof it is wrong, so only a repeat marks it.
    ErrorCode(
        21612,
        "Message cannot be sent with the current combination of 'To' and 'From' parameters",
        "https://www.twilio.com/docs/api/errors/21612",
        _FAILED_UNREACHABLE_IF_REPEATED,
    ),
    # The number's country is off in our Messaging Geo Permissions. Refused for this number
    # only: as a provider error, a few numbers abroad would open the circuit for everyone.
    ErrorCode(
        21408,
        "Message blocked: permissions disabled for the destination region",
        "https://www.twilio.com/docs/api/errors/21408",
        _FAILED_UNREACHABLE_IF_REPEATED,
    ),
    # Codes of a status callback: the carrier's answer after Twilio took the message.
    ErrorCode(
        30005,
        "Unknown destination handset",
        "https://www.twilio.com/docs/api/errors/30005",
        _FAILED_INVALID_ADDRESS,
    ),
    ErrorCode(
        30006,
        "Landline or unreachable carrier",
        "https://www.twilio.com/docs/api/errors/30006",
        _FAILED_INVALID_ADDRESS,
    ),
    # Often a phone that is off or out of coverage, so only a repeat condemns the number.
    ErrorCode(
        30003,
        "Unreachable destination handset",
        "https://www.twilio.com/docs/api/errors/30003",
        _FAILED_UNREACHABLE_IF_REPEATED,
    ),
    ErrorCode(
        30004,
        "Message blocked",
        "https://www.twilio.com/docs/api/errors/30004",
        _FAILED_BLOCKED,
    ),
    ErrorCode(
        30007,
        "Message filtered (carrier violation)",
        "https://www.twilio.com/docs/api/errors/30007",
        _FAILED_BLOCKED,
    ),
    # Twilio's or the carrier's trouble, not the number's. Listed so that they stay here if
    # the default ever changes.
    ErrorCode(
        30001,
        "Queue overflow",
        "https://www.twilio.com/docs/api/errors/30001",
        TWILIO_ERROR_DEFAULT,
    ),
    ErrorCode(
        30008,
        "Unknown error",
        "https://www.twilio.com/docs/api/errors/30008",
        TWILIO_ERROR_DEFAULT,
    ),
    ErrorCode(
        30500,
        "Twilio internal error",
        "https://www.twilio.com/docs/api/errors/30500",
        TWILIO_ERROR_DEFAULT,
    ),
)

TWILIO_ERROR_CODES: Mapping[int, ErrorCode] = MappingProxyType(
    {row.code: row for row in _TWILIO_ERROR_ROWS}
)
"""Twilio error codes by number, one table for both ways a code arrives: the answer to a
refused send (the adapter's PermanentProviderError takes its reason) and the ``ErrorCode``
of an undelivered or failed message's status callback."""


def classify_twilio(message_status: str, error_code: str | int | None) -> Classification:
    """One Twilio status callback (``MessageStatus``, ``ErrorCode``) in the contract's terms.
    The code is read only for a failure; it may arrive as a form string or a number."""
    status = _normalize(message_status)
    if status in TWILIO_FAILURE_STATUSES:
        return classify_twilio_error(error_code)
    return TWILIO_STATUSES.get(status, IGNORED)


def classify_twilio_error(error_code: str | int | None) -> Classification:
    """A Twilio error code in the contract's terms, from a refused send or a status
    callback; TWILIO_ERROR_DEFAULT when it is missing or unknown."""
    code = _twilio_error_code(error_code)
    row = TWILIO_ERROR_CODES.get(code) if code is not None else None
    return row.outcome if row is not None else TWILIO_ERROR_DEFAULT


def _twilio_error_code(error_code: str | int | None) -> int | None:
    if isinstance(error_code, int):
        return error_code
    if error_code is None:
        return None
    text = error_code.strip()
    return int(text) if text.isdecimal() else None


def _normalize(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()
