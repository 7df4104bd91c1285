"""Twilio Programmable Messaging: one SMS per delivery, built by the twilio SDK, sent over
the service's shared provider session (provider_http.py); the signed webhooks Twilio posts
back (message status callbacks and inbound messages), verified and parsed.

The SDK builds the request (URL, form fields, Basic auth, headers) and parses the reply, but
its transport is ours. Its own ``AsyncTwilioHttpClient`` (aiohttp) is unfit for sending
notifications, as read in twilio 9.13:

- it ignores the ``timeout`` it is constructed with: ``request()`` uses only the per-call
  timeout, which ``MessageList.create_async`` never passes, and aiohttp turns ``None`` into
  ``ClientTimeout(total=None)``, so a silent server holds the send forever;
- given ``max_retries`` it wraps its session in aiohttp_retry's ``ExponentialRetry``, whose
  defaults retry every method, POST included, on any 5xx. A 5xx can come after Twilio has
  queued the message, so a parent would be texted twice. Whether to retry is the caller's
  decision (it holds the delivery ledger), so this transport makes exactly one attempt;
- it opens an aiohttp session of its own beside our connection pool, with cookies.

Where requests go: ``client.api`` is the Api domain (``ApiBase``, base_url
"https://api.twilio.com"); ``Domain.absolute_url`` joins ``base_url.strip("/")`` with
"2010-04-01/Accounts/{AccountSid}/Messages.json", so setting ``client.api.base_url`` moves
Messages create and list (and the list's next pages) to the configured base (a fake server
in tests).

Errors: https://www.twilio.com/docs/api/errors
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from notifier.adapters.provider_http import ProviderHttp, basic_auth, retry_after_seconds
from notifier.domain.classification import classify_twilio, classify_twilio_error
from notifier.domain.lifecycle import ProviderReport
from notifier.domain.model import Channel, OutboundMessage, Reason
from notifier.ports import (
    InboundText,
    PermanentProviderError,
    ProviderError,
    ProviderReceipt,
    TransientProviderError,
    WebhookRejected,
)

PROVIDER = "twilio"

SIGNATURE_HEADER = "X-Twilio-Signature"

# A whole SID, not just the "MG" prefix: an alphanumeric sender id may start with "MG" too.
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

CLOCK_SLACK = timedelta(seconds=30)
"""How much earlier than our claim a text found in Twilio's list may be dated and still be
ours: Twilio's ``date_created`` has whole seconds, and its clock is not ours."""


class TwilioSms:
    """Sends ``message.sms`` from ``message.sender_address``: a Messaging Service SID
    ("MG" + 32 hex, sent as MessagingServiceSid) or a Twilio number / sender id (From)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        http: ProviderHttp,
        api_base_url: str = "https://api.twilio.com",
        status_callback_url: str | None = None,
        lookup_page_size: int = 20,
        lookup_pages: int = 2,
    ) -> None:
        # The SDK falls back to TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN from os.environ when
        # given empty credentials; refuse instead of sending with someone else's account.
        if not account_sid or not auth_token:
            raise ValueError("Twilio account_sid and auth_token are required")
        self._transport = _SdkTransport(http)
        self._messages = _sdk_client(account_sid, auth_token, api_base_url, self._transport)
        self._status_callback_url = status_callback_url
        self._lookup_page_size = lookup_page_size
        self._lookup_pages = lookup_pages

    @property
    def provider(self) -> str:
        return PROVIDER

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        if message.sms is None:
            raise ValueError(f"delivery {message.delivery_id} has no rendered SMS")
        sender = message.sender_address
        if not sender:
            raise PermanentProviderError(
                PROVIDER, "no SMS sender configured for this district", reason=Reason.PROVIDER_ERROR
            )

        fields: dict[str, str] = {"to": message.to, "body": message.sms.body}
        if _MESSAGING_SERVICE_SID.match(sender):
            fields["messaging_service_sid"] = sender
        else:
            fields["from_"] = sender
        if self._status_callback_url:
            fields["status_callback"] = self._status_callback_url

        self._transport.forget_response()
        try:
            created = await self._messages.create_async(**fields)
        except (TwilioRestException, TwilioServiceException) as error:
            raise _rejection(error, self._transport.last_response()) from error
        return ProviderReceipt(provider=PROVIDER, provider_message_id=created.sid)

    async def find_sent(self, message: OutboundMessage, since: datetime) -> ProviderReceipt | None:
        """The text Twilio took for ``message`` at or after ``since`` (an attempt that died
        before recording its answer): the newest outbound Message to the same number with
        the same body, from the account's Messages list filtered by ``To`` alone, newest
        first. Not by ``DateSent``: a message still queued has no ``date_sent`` yet. Reads
        ``lookup_pages`` pages of ``lookup_page_size`` at most, stopping at the first
        message older than ``since``; raises ProviderError when Twilio can't be asked.

        https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
        """
        if message.sms is None:
            raise ValueError(f"delivery {message.delivery_id} has no rendered SMS")
        earliest = since - CLOCK_SLACK
        self._transport.forget_response()
        try:
            page = await self._messages.page_async(to=message.to, page_size=self._lookup_page_size)
            for _ in range(self._lookup_pages):
                for found in page:
                    created: datetime | None = found.date_created
                    if created is not None and created < earliest:
                        return None
                    if found.body == message.sms.body and found.direction == "outbound-api":
                        return ProviderReceipt(provider=PROVIDER, provider_message_id=found.sid)
                page = await page.next_page_async()
                if page is None:
                    return None
        except (TwilioRestException, TwilioServiceException) as error:
            raise _rejection(error, self._transport.last_response()) from error
        except TwilioException as error:
            # A page answered with anything but 200 (the SDK's Page refuses it).
            response = self._transport.last_response()
            status = response.status_code if response is not None else 0
            raise TransientProviderError(PROVIDER, f"Messages list: HTTP {status}") from error
        return None


def _sdk_client(
    account_sid: str, auth_token: str, api_base_url: str, transport: _SdkTransport
) -> Any:
    """The SDK's Messages list, built once: a Client costs 26 µs to build, a tenth of the
    adapter's whole cost per text."""
    client = Client(
        account_sid,
        auth_token,
        http_client=transport,
        # ClientBase reads TWILIO_EDGE / TWILIO_REGION from `environment or os.environ`
        # and rewrites the request host with them. An empty dict is falsy and would fall
        # back to os.environ, so pin both to "" (no rewrite) instead.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
    client.api.base_url = api_base_url
    return client.messages


# The SDK ships no type information, so its base class is Any to mypy.
class _SdkTransport(AsyncHttpClient):  # type: ignore[misc]
    """The SDK's transport seam (``twilio.http.AsyncHttpClient.request``) over our provider
    session: our timeout, one attempt, the SDK's Basic auth tuple as a header. A failure
    below HTTP leaves as our typed ProviderError, which the SDK lets through.

    The SDK's exceptions drop the response headers (Retry-After), so the transport keeps the
    last response for the caller, in a context variable: each send runs in its own task,
    and one send must never read another's answer."""

    def __init__(self, http: ProviderHttp) -> None:
        super().__init__(logger=logging.getLogger(__name__), is_async=True)
        self._http = http
        self._last_response: ContextVar[TwilioResponse | None] = ContextVar(
            "twilio_last_response", default=None
        )

    def forget_response(self) -> None:
        self._last_response.set(None)

    def last_response(self) -> TwilioResponse | None:
        """The answer to this task's latest request since ``forget_response``."""
        return self._last_response.get()

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        # The name and type are the SDK's signature; ours is the provider session's timeout.
        timeout: float | None = None,  # noqa: ASYNC109
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        sent_headers = dict(headers or {})
        if auth is not None:
            sent_headers["Authorization"] = basic_auth(*auth)
        body = None
        if data is not None:
            sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(data, doseq=True).encode()
        response = await self._http.request(
            method,
            uri,
            headers=sent_headers,
            params={key: str(value) for key, value in (params or {}).items()},
            body=body,
        )
        answer = TwilioResponse(response.status, response.text, response.headers)
        self._last_response.set(answer)
        return answer


def _rejection(
    error: TwilioRestException | TwilioServiceException, response: TwilioResponse | None
) -> ProviderError:
    status: int = error.status
    code: int | None = error.code
    detail = _detail(error)
    if status == 429 or status >= 500:
        retry_after = response.headers.get("retry-after") if response is not None else None
        return TransientProviderError(
            PROVIDER, detail, code=_code_text(code), retry_after=retry_after_seconds(retry_after)
        )
    # A code the table doesn't know is our account's or request's fault: PROVIDER_ERROR.
    reason = classify_twilio_error(code).reason or Reason.PROVIDER_ERROR
    return PermanentProviderError(PROVIDER, detail, reason=reason, code=_code_text(code))


def _detail(error: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(error, TwilioServiceException):
        text = f"{error.title}: {error.detail}" if error.detail else error.title
    else:
        text = error.msg
    return f"HTTP {error.status} {text}"


def _code_text(code: int | None) -> str | None:
    return str(code) if code is not None else None


class TwilioSignatureVerifier:
    """Checks X-Twilio-Signature: base64 HMAC-SHA1, keyed with the account's auth token, of
    the URL Twilio requested followed by each POST parameter's name and value in name order.

    The URL must be the one configured with Twilio (scheme, host, path and query as Twilio
    called them), not the one the app sees behind a proxy or load balancer, so the caller
    passes it from configuration.

    A request matched by a Twilio Webhooks Rule is signed with that rule's SharedKey instead
    (it carries X-Twilio-Webhooks-Signature-Settings) and is rejected here.

    https://www.twilio.com/docs/usage/webhooks/webhooks-security
    """

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("the Twilio auth_token is required")
        self._validator = RequestValidator(auth_token)

    def verify(self, url: str, params: Mapping[str, str], signature: str | None) -> None:
        """Return when ``signature`` is Twilio's for ``url`` and the form ``params`` (every
        field received, none dropped or trimmed); raise WebhookRejected otherwise."""
        if not signature:
            raise WebhookRejected(f"missing {SIGNATURE_HEADER}")
        # The SDK also accepts the URL with the default port added or removed, because
        # Twilio has signed both forms.
        if not self._validator.validate(url, params, signature):
            raise WebhookRejected(f"{SIGNATURE_HEADER} does not match")


@dataclass(frozen=True, slots=True)
class TwilioStatus:
    """A message status callback.

    https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
    """

    message_sid: str
    message_status: str
    """Lower-case: queued, sending, sent, delivered, undelivered, failed, ..."""
    error_code: str | None
    """Set for undelivered and failed, e.g. "30003" (https://www.twilio.com/docs/api/errors)."""
    to: str | None
    from_: str | None
    account_sid: str | None


def parse_status_callback(form: Mapping[str, str]) -> TwilioStatus:
    """The status callback in a verified form; ValueError when it lacks MessageSid or
    MessageStatus."""
    message_sid = _form_text(form, "MessageSid")
    status = _form_text(form, "MessageStatus")
    if message_sid is None or status is None:
        raise ValueError("a Twilio status callback needs MessageSid and MessageStatus")
    return TwilioStatus(
        message_sid=message_sid,
        message_status=status.lower(),
        error_code=_form_text(form, "ErrorCode"),
        to=_form_text(form, "To"),
        from_=_form_text(form, "From"),
        account_sid=_form_text(form, "AccountSid"),
    )


def parse_inbound(form: Mapping[str, str]) -> InboundText:
    """The inbound message in a verified form; ValueError when it lacks MessageSid or
    From."""
    message_sid = _form_text(form, "MessageSid")
    sender = _form_text(form, "From")
    if message_sid is None or sender is None:
        raise ValueError("a Twilio inbound message needs MessageSid and From")
    return InboundText(
        message_sid=message_sid,
        sender=sender,
        to=_form_text(form, "To"),
        body=form.get("Body") or "",
    )


def _form_text(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


class TwilioWebhooks:
    """Status callbacks and inbound texts: verified, then in the contract's terms."""

    def __init__(self, verifier: TwilioSignatureVerifier) -> None:
        self._verifier = verifier

    def status_report(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str], now: datetime
    ) -> ProviderReport:
        self._verifier.verify(url, form, headers.get(SIGNATURE_HEADER))
        status = parse_status_callback(form)
        return ProviderReport(
            provider=PROVIDER,
            channel=Channel.SMS,
            classification=classify_twilio(status.message_status, status.error_code),
            occurred_at=now,
            # Twilio may call more than once per status; one status of one message is one
            # report.
            event_key=f"{status.message_sid}:{status.message_status}:{status.error_code or ''}",
            provider_message_id=status.message_sid,
            address=status.to,
        )

    def inbound_text(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundText:
        self._verifier.verify(url, form, headers.get(SIGNATURE_HEADER))
        return parse_inbound(form)
