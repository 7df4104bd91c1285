"""Twilio SendGrid: v3 Mail Send (one email per delivery, posted over the service's shared
provider session, provider_http.py), the Signed Event Webhook (verify, then parse a batch),
and the bounce list (take an address off it when its contact point is reset).

The body is built with the ``sendgrid`` package's mail helpers (``Mail(...).get()``), which
know the v3 shape (text/plain content before text/html, custom_args flattened into one
object). It is not sent with ``SendGridAPIClient``: that client is python_http_client over
synchronous urllib, built without a timeout (``python_http_client.Client(timeout=None)``,
so a silent server blocks the event loop's thread indefinitely). We post the JSON ourselves
instead: non-blocking, our timeout, one attempt.

Responses: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send#responses
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sendgrid.helpers.mail import (
    CustomArg,
    From,
    HtmlContent,
    Mail,
    PlainTextContent,
    ReplyTo,
    Subject,
    To,
)
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from notifier.adapters.provider_http import ProviderHttp, ProviderResponse, retry_after_seconds
from notifier.domain.classification import classify_sendgrid
from notifier.domain.lifecycle import ProviderReport
from notifier.domain.model import Channel, OutboundMessage, Reason, ReplyAttachment
from notifier.domain.rendering import one_line
from notifier.ports import (
    InboundEmail,
    PermanentProviderError,
    ProviderError,
    ProviderReceipt,
    TransientProviderError,
    WebhookRejected,
)

PROVIDER = "sendgrid"

SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
"""X-Twilio-Email-Event-Webhook-Signature: base64 of a DER ECDSA signature."""
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
"""X-Twilio-Email-Event-Webhook-Timestamp: Unix seconds, signed together with the body."""

# Our ids travel as custom_args on each mail and come back as top-level keys of each event.
# SendGrid reserves names such as email, event, type, status and sg_* for its own fields,
# hence the prefix.
DELIVERY_ID_ARG = "notifier_delivery_id"
MESSAGE_ID_ARG = "notifier_message_id"
RECIPIENT_ID_ARG = "notifier_recipient_id"
CONVERSATION_ID_ARG = "notifier_conversation_id"

# Digits only, and few of them: int() would accept "+1", " 1", "1_0" and non-ASCII digits,
# and raises on strings longer than 4300 digits.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")

FIELD_REASONS: tuple[tuple[re.Pattern[str], Reason], ...] = (
    # A 400 naming the recipient's address ("personalizations.0.to.0.email": "Does not contain
    # a valid address."): the address is at fault, not our request. Errors on "from" or any
    # other field are ours and stay Reason.PROVIDER_ERROR.
    # https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send#responses
    (re.compile(r"^personalizations\.\d+\.to\b"), Reason.INVALID_ADDRESS),
)
"""First matching pattern over the ``field`` of each error in a 400 body wins. Any other
4xx (400, 401 bad key, 403 no permission, 413 too large, ...) is Reason.PROVIDER_ERROR."""


class SendGridEmail:
    """Sends ``message.email`` from ``message.sender_address`` (display name
    ``message.sender_name``), tagged with our ids so that event webhooks can be matched."""

    def __init__(
        self,
        *,
        api_key: str,
        http: ProviderHttp,
        api_base_url: str = "https://api.sendgrid.com",
    ) -> None:
        if not api_key:
            raise ValueError("SendGrid api_key is required")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._json_headers = self._headers | {"Content-Type": "application/json"}
        self._http = http
        base = api_base_url.rstrip("/")
        self._mail_send_url = f"{base}/v3/mail/send"
        self._bounces_url = f"{base}/v3/suppression/bounces"

    @property
    def provider(self) -> str:
        return PROVIDER

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        body = orjson.dumps(_mail_body(message))
        response = await self._http.request(
            "POST", self._mail_send_url, headers=self._json_headers, body=body
        )
        if response.is_success:
            return ProviderReceipt(
                provider=PROVIDER, provider_message_id=response.headers.get("x-message-id")
            )
        raise _rejection(response)

    async def delete_bounce(self, email: str) -> None:
        """Take ``email`` off SendGrid's bounce list: SendGrid drops mail to a listed address
        without trying it, so a reset contact point would otherwise stay silent. An address
        that is not on the list is already where we want it. The request is idempotent, so
        any error but a permanent one may be retried.

        https://www.twilio.com/docs/sendgrid/api-reference/bounces-api/delete-a-bounce
        """
        if not email.strip():
            # DELETE on the bare /v3/suppression/bounces is "delete bounces" (all of them,
            # with delete_all); never come near it.
            raise ValueError("an email address is required to delete a bounce")
        # "/", "?", "#", "%" and "+" may all appear in a local part.
        url = f"{self._bounces_url}/{quote(email, safe='@')}"
        response = await self._http.request("DELETE", url, headers=self._headers)
        # The reference documents 204; an address not on the list gets 404
        # (https://github.com/sendgrid/docs/issues/6194).
        if response.is_success or response.status == 404:
            return
        raise _rejection(response, field_reasons=())


def _mail_body(message: OutboundMessage) -> dict[str, Any]:
    if message.email is None:
        raise ValueError(f"delivery {message.delivery_id} has no rendered email")
    if not message.sender_address:
        raise PermanentProviderError(
            PROVIDER, "no email sender configured for this district", reason=Reason.PROVIDER_ERROR
        )
    try:
        mail = Mail(
            from_email=_address(From, message.sender_address, message.sender_name),
            to_emails=_address(To, message.to, None),
            subject=Subject(message.email.subject),
            plain_text_content=PlainTextContent(message.email.text),
            html_content=HtmlContent(message.email.html),
        )
    except ApiKeyIncludedException as error:
        # The helper refuses content that starts like a SendGrid key ("SG.x.y"); the same
        # text will be refused on every attempt.
        raise PermanentProviderError(
            PROVIDER, "content looks like a SendGrid API key", reason=Reason.PROVIDER_ERROR
        ) from error
    # SendGrid requires string values.
    for key, value in (
        (DELIVERY_ID_ARG, message.delivery_id),
        (MESSAGE_ID_ARG, message.message_id),
        (RECIPIENT_ID_ARG, message.recipient_id),
        (CONVERSATION_ID_ARG, message.conversation_id),
    ):
        mail.add_custom_arg(CustomArg(key, str(value)))
    if message.reply_to:
        mail.reply_to = _address(ReplyTo, message.reply_to, message.sender_name)
    body: dict[str, Any] = mail.get()
    return body


def _address(kind: type[Any], email: str, name: str | None) -> Any:
    # Without a name, the helper's Email(email) parses "Name <addr>" and turns a string with
    # no "@" into a name without an address, on which Mail.get() raises KeyError. Setting the
    # fields sends the address as given, and SendGrid's 400 names the field that is wrong.
    address = kind()
    address.email = email
    address.name = one_line(name) if name else name
    return address


def _rejection(
    response: ProviderResponse,
    *,
    field_reasons: tuple[tuple[re.Pattern[str], Reason], ...] = FIELD_REASONS,
) -> ProviderError:
    status = response.status
    errors = _errors(response)
    detail = f"HTTP {status} " + (
        "; ".join(
            f"{error['field']}: {error['message']}" if error.get("field") else error["message"]
            for error in errors
        )
        or response.reason
    )
    code = str(status)
    if status == 429 or status >= 500:
        return TransientProviderError(
            PROVIDER, detail, code=code, retry_after=_retry_after(response.headers)
        )
    reason = Reason.PROVIDER_ERROR
    if status == 400:
        reason = next(
            (
                field_reason
                for error in errors
                for pattern, field_reason in field_reasons
                if pattern.search(str(error.get("field") or ""))
            ),
            Reason.PROVIDER_ERROR,
        )
    return PermanentProviderError(PROVIDER, detail, reason=reason, code=code)


def _errors(response: ProviderResponse) -> list[dict[str, str]]:
    """The ``errors`` list of a SendGrid error body, as strings; empty when there is none."""
    try:
        payload = response.json()
    except ValueError:
        return []
    raw = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(raw, list):
        return []
    return [
        {"field": str(item.get("field") or ""), "message": str(item.get("message") or "")}
        for item in raw
        if isinstance(item, dict)
    ]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds until SendGrid takes requests again: Retry-After (delta-seconds or HTTP-date)
    when present, else X-RateLimit-Reset, which SendGrid sends as epoch seconds."""
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


class SendGridEventVerifier:
    """Checks a Signed Event Webhook request: SendGrid signs the timestamp header followed by
    the raw body with ECDSA (SHA-256) and posts the base64 DER signature; the timestamp must
    also be within ``max_age_seconds`` of now, either way, so that a captured batch cannot be
    replayed later. ``public_key`` is the verification key as Mail Settings shows it (base64
    DER SubjectPublicKeyInfo of a P-256 key).

    https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
    """

    def __init__(self, public_key: str, *, max_age_seconds: float) -> None:
        if max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds must be positive, got {max_age_seconds}")
        # The key as pasted may be wrapped over several lines.
        key_text = "".join(public_key.split())
        if not key_text:
            # EventWebhook("") would build a verifier without a key.
            raise ValueError("the SendGrid event webhook verification key is required")
        self._webhook = EventWebhook()
        try:
            key = self._webhook.convert_public_key_to_ecdsa(key_text)
        except ValueError as error:
            raise ValueError(
                "the SendGrid event webhook verification key is not a base64 DER public key"
            ) from error
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the SendGrid event webhook verification key is not an EC key")
        self._public_key = key
        self._max_age_seconds = max_age_seconds

    def verify(self, body: bytes, signature: str | None, timestamp: str | None, now: float) -> None:
        """Return when the request is SendGrid's and fresh; raise WebhookRejected otherwise.
        ``body`` is the request body exactly as received, ``now`` Unix seconds."""
        if not signature:
            raise WebhookRejected(f"missing {SIGNATURE_HEADER}")
        if not timestamp:
            raise WebhookRejected(f"missing {TIMESTAMP_HEADER}")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise WebhookRejected(f"{TIMESTAMP_HEADER} is not an integer")
        age = now - int(timestamp)
        if age > self._max_age_seconds:
            raise WebhookRejected(f"{TIMESTAMP_HEADER} is {age:.0f} s old")
        if -age > self._max_age_seconds:
            raise WebhookRejected(f"{TIMESTAMP_HEADER} is {-age:.0f} s in the future")
        # The helper decodes leniently (dropping stray characters) and lets a malformed
        # signature reach the key's verify(); check both forms here first.
        try:
            der = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise WebhookRejected(f"{SIGNATURE_HEADER} is not base64") from None
        try:
            decode_dss_signature(der)
        except ValueError:
            raise WebhookRejected(f"{SIGNATURE_HEADER} is not a DER ECDSA signature") from None
        try:
            # The helper signs str(timestamp + payload).encode("utf-8"): a strict decode
            # round-trips to the same bytes.
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("the body is not UTF-8") from None
        if not self._webhook.verify_signature(payload, signature, timestamp, self._public_key):
            raise WebhookRejected(f"{SIGNATURE_HEADER} does not match the body")


@dataclass(frozen=True, slots=True)
class SendGridEvent:
    """One event of an Event Webhook batch; what SendGrid left out is None.

    https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
    """

    event: str
    """processed, dropped, delivered, deferred, bounce, open, click, spamreport,
    unsubscribe, group_unsubscribe, group_resubscribe, ..."""
    email: str | None
    """Lower-cased."""
    timestamp: int | None
    """Unix seconds."""
    sg_event_id: str | None
    sg_message_id: str | None
    provider_message_id: str | None
    """The X-Message-Id of the send: sg_message_id up to its first "." (SendGrid appends a
    per-recipient suffix)."""
    type: str | None
    """For a bounce event: "bounce" or "blocked"."""
    bounce_classification: str | None
    reason: str | None
    status: str | None
    """The SMTP enhanced status code, such as "5.2.2"."""
    response: str | None
    url: str | None
    """The link followed, for a click."""
    # Our ids, from custom_args. Absent from events SendGrid cannot tie to a send, such as a
    # bounce that the receiving server sends back days later.
    delivery_id: str | None
    message_id: str | None
    recipient_id: str | None


def parse_events(body: bytes) -> list[SendGridEvent]:
    """The events of a batch, in order. Raises ValueError for a body that is not a JSON
    array; items that are not objects with an ``event`` name are skipped."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"the SendGrid event batch is not valid JSON: {error}") from error
    if not isinstance(payload, list):
        raise ValueError(
            f"the SendGrid event batch must be a JSON array, not {type(payload).__name__}"
        )
    events = (_event(item) for item in payload if isinstance(item, dict))
    return [event for event in events if event is not None]


def _event(item: dict[str, Any]) -> SendGridEvent | None:
    name = _text(item.get("event"))
    if name is None:
        return None
    email = _text(item.get("email"))
    sg_message_id = _text(item.get("sg_message_id"))
    return SendGridEvent(
        event=name,
        email=email.strip().lower() if email else None,
        timestamp=_timestamp(item.get("timestamp")),
        sg_event_id=_text(item.get("sg_event_id")),
        sg_message_id=sg_message_id,
        provider_message_id=_text(sg_message_id.split(".", 1)[0]) if sg_message_id else None,
        type=_text(item.get("type")),
        bounce_classification=_text(item.get("bounce_classification")),
        reason=_text(item.get("reason")),
        status=_text(item.get("status")),
        response=_text(item.get("response")),
        url=_text(item.get("url")),
        delivery_id=_text(item.get(DELIVERY_ID_ARG)),
        message_id=_text(item.get(MESSAGE_ID_ARG)),
        recipient_id=_text(item.get(RECIPIENT_ID_ARG)),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_LAST_SECOND = 253_402_300_799
"""9999-12-31T23:59:59Z: a later Unix time is no date at all (datetime can't hold it)."""


def _timestamp(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _LAST_SECOND:
        return value
    return None


class SendGridWebhook:
    """The Event Webhook: verified, then each event as a provider report."""

    def __init__(self, verifier: SendGridEventVerifier) -> None:
        self._verifier = verifier

    def reports(
        self, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> list[ProviderReport]:
        self._verifier.verify(
            body, headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), now.timestamp()
        )
        return [
            ProviderReport(
                provider=PROVIDER,
                channel=Channel.EMAIL,
                classification=classify_sendgrid(
                    event.event,
                    type=event.type,
                    bounce_classification=event.bounce_classification,
                    # Deferrals carry the server's reply in `response`, bounces in `reason`.
                    reason=event.reason or event.response,
                    smtp_status=event.status,
                ),
                occurred_at=datetime.fromtimestamp(event.timestamp, UTC)
                if event.timestamp
                else now,
                event_key=event.sg_event_id,
                delivery_id=event.delivery_id,
                provider_message_id=event.provider_message_id,
                address=event.email,
            )
            for event in parse_events(body)
        ]


class SendGridBounceList:
    """SendGrid's bounce suppression list, as the Suppressions port."""

    def __init__(self, email: SendGridEmail) -> None:
        self._email = email

    async def remove(self, address: str) -> None:
        await self._email.delete_bounce(address)


class SendGridInboundParse:
    """Inbound Parse: SendGrid posts each email sent to the reply domain as a multipart form.
    Nothing in it is signed, so the URL configured at SendGrid carries a secret, as its last
    path segment or as basic-auth credentials (``https://sendgrid:<secret>@host/...``), that
    every request must present.
    https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook"""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def authenticate(self, headers: Mapping[str, str], path_secret: str | None) -> None:
        if path_secret is not None:
            presented = path_secret.encode()
        else:
            presented = _basic_auth_password(headers.get("authorization") or "")
        if not hmac.compare_digest(presented, self._secret):
            raise WebhookRejected("wrong inbound secret")

    def inbound_email(
        self, fields: Mapping[str, str], attachments: Sequence[ReplyAttachment]
    ) -> InboundEmail:
        sender = parseaddr(fields.get("from", ""))[1].strip().lower()
        if "@" not in sender:
            raise ValueError("the email has no sender address")
        headers = HeaderParser(policy=email_policy.default).parsestr(fields.get("headers", ""))
        return InboundEmail(
            message_id=_message_id(headers, fields),
            sender=sender,
            reply_addresses=_addressed_to(fields, headers),
            subject=fields.get("subject", ""),
            text=fields.get("text") or _text_of_html(fields.get("html", "")),
            attachments=tuple(attachments),
        )


def _basic_auth_password(authorization: str) -> bytes:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRejected("no inbound secret (path segment or basic auth)")
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as error:
        raise WebhookRejected("malformed basic-auth credentials") from error
    return credentials.partition(b":")[2]


def _message_id(headers: EmailMessage, fields: Mapping[str, str]) -> str:
    """The Message-ID is the email's own identity, the same on every retry of the post. A
    mail without one is known by a digest of what identifies it instead."""
    message_id = str(headers.get("message-id") or "").strip()
    if message_id:
        return message_id[:998]
    digest = hashlib.sha256()
    for name in ("from", "to", "subject", "text", "html"):
        digest.update(fields.get(name, "").encode() + b"\x1f")
    digest.update(str(headers.get("date") or "").encode())
    return f"sha256:{digest.hexdigest()}"


def _addressed_to(fields: Mapping[str, str], headers: EmailMessage) -> tuple[str, ...]:
    """The SMTP envelope says where the mail was really delivered (Bcc and forwarding
    included); the To and Cc headers are the fallback."""
    addresses: list[str] = []
    try:
        envelope = orjson.loads(fields.get("envelope") or "{}")
    except orjson.JSONDecodeError as error:
        raise ValueError("envelope is not JSON") from error
    if isinstance(envelope, dict) and isinstance(envelope.get("to"), list):
        addresses += [str(item) for item in envelope["to"]]
    for header in ("to", "cc"):
        value = fields.get(header) or str(headers.get(header) or "")
        addresses += [address for _, address in getaddresses([value]) if address]
    return tuple(dict.fromkeys(a.strip().lower() for a in addresses if "@" in a))


def _text_of_html(markup: str) -> str:
    """For the rare reply sent as HTML only: its text, without tags, scripts or styles."""
    reader = _HtmlText()
    reader.feed(markup)
    reader.close()
    return reader.text()


class _HtmlText(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "blockquote", "h1", "h2", "h3"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._parts.append(data)

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self._parts).splitlines())
        return "\n".join(line for line in lines if line).strip()
