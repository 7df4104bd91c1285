"""Twilio SendGrid v3 Mail Send: one email per delivery, posted with the service's shared
httpx client.

The body is built with the ``sendgrid`` package's mail helpers (``Mail(...).get()``), which
know the v3 shape (text/plain content before text/html, custom_args flattened into one
object). It is not sent with ``SendGridAPIClient``: that client is python_http_client over
synchronous urllib, built without a timeout (``python_http_client.Client(timeout=None)``,
so a silent server blocks the event loop's thread indefinitely). We post the JSON with httpx
instead: non-blocking, our timeout, one attempt.

Responses: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send#responses
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sendgrid.helpers.mail import (
    CustomArg,
    From,
    HtmlContent,
    Mail,
    PlainTextContent,
    Subject,
    To,
)
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from notifier.adapters.provider_http import retry_after_seconds, transport_error
from notifier.domain.model import OutboundMessage, Reason
from notifier.ports import (
    PermanentProviderError,
    ProviderError,
    ProviderReceipt,
    TransientProviderError,
)

PROVIDER = "sendgrid"

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
        http_client: httpx.AsyncClient,
        timeout_seconds: float,
        api_base_url: str = "https://api.sendgrid.com",
    ) -> None:
        if not api_key:
            raise ValueError("SendGrid api_key is required")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._http_client = http_client
        self._timeout = httpx.Timeout(timeout_seconds)
        self._url = f"{api_base_url.rstrip('/')}/v3/mail/send"

    @property
    def provider(self) -> str:
        return PROVIDER

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        body = _mail_body(message)
        try:
            response = await self._http_client.post(
                self._url, json=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.TransportError as error:
            raise transport_error(PROVIDER, error) from error
        if response.is_success:
            return ProviderReceipt(
                provider=PROVIDER, provider_message_id=response.headers.get("x-message-id")
            )
        raise _rejection(response)


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
    # SendGrid reserves names such as email, event, type, status and sg_* for its own
    # event fields, and requires string values; ours are prefixed and stringified.
    for key, value in (
        ("notifier_delivery_id", message.delivery_id),
        ("notifier_message_id", message.message_id),
        ("notifier_recipient_id", message.recipient_id),
        ("notifier_conversation_id", message.conversation_id),
    ):
        mail.add_custom_arg(CustomArg(key, str(value)))
    body: dict[str, Any] = mail.get()
    return body


def _address(kind: type[Any], email: str, name: str | None) -> Any:
    # Without a name, the helper's Email(email) parses "Name <addr>" and turns a string with
    # no "@" into a name without an address, on which Mail.get() raises KeyError. Setting the
    # fields sends the address as given, and SendGrid's 400 names the field that is wrong.
    address = kind()
    address.email = email
    address.name = name
    return address


def _rejection(response: httpx.Response) -> ProviderError:
    status = response.status_code
    errors = _errors(response)
    detail = f"HTTP {status} " + (
        "; ".join(
            f"{error['field']}: {error['message']}" if error.get("field") else error["message"]
            for error in errors
        )
        or response.reason_phrase
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
                for pattern, field_reason in FIELD_REASONS
                if pattern.search(str(error.get("field") or ""))
            ),
            Reason.PROVIDER_ERROR,
        )
    return PermanentProviderError(PROVIDER, detail, reason=reason, code=code)


def _errors(response: httpx.Response) -> list[dict[str, str]]:
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


def _retry_after(headers: httpx.Headers) -> float | None:
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
