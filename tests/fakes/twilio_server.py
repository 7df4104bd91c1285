"""A local HTTP server that speaks the part of Twilio's REST API notifier uses: Messages create
and Messages list.

    with FakeTwilio() as twilio:
        ...  # point the adapter at twilio.base_url, then look at twilio.received

Run alone (for the demo or a benchmark): ``python -m tests.fakes.twilio_server --port 8701``.

Behaviour follows Twilio's: form-encoded POST to
/2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP Basic auth (account sid, auth token),
201 with a Message resource, errors as {"code", "message", "more_info", "status"}, and the
test-credential magic numbers (https://www.twilio.com/docs/iam/test-credentials):
+15005550001 invalid (21211), +15005550002 unroutable (21612), +15005550003 no international
permission (21408), +15005550004 blocked / opted out (21610), +15005550009 not a mobile (21614).

The list (GET on the same path) is Twilio's "read multiple Message resources": newest first,
filtered by ``To``, ``From`` and ``DateSent`` / ``DateSent<`` / ``DateSent>`` (a message
still queued has no ``date_sent`` and so never matches a DateSent filter), ``PageSize``
(default 50, at most 1000) with ``next_page_uri`` carrying ``Page`` and a ``PageToken``,
and the page envelope (``first_page_uri``, ``page``, ``start``, ``end``, ``uri``...).
https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.fault_modes import (
    FaultInjectingApi,
    FaultPlan,
    add_fault_arguments,
    faults_from_arguments,
)
from tests.fakes.http_server import (
    ReceivedRequest,
    Reply,
    serve_until_signalled,
    server_arguments,
)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

# To-number -> (code, message template) for Twilio's magic test numbers.
MAGIC_NUMBERS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone"
        " number: {sender} via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the"
        " 'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    code: int
    message: str
    retry_after: float | None = None


class FakeTwilio(FaultInjectingApi[ScriptedFailure]):
    """Twilio's Messages API, as described above; ``faults`` (a FaultPlan) adds random
    500s, 429s and hangs."""

    content_type = "application/json; charset=utf-8"

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(
            name="fake-twilio",
            host=host,
            port=port,
            delay_seconds=delay_seconds,
            unavailable=ScriptedFailure(status=503, code=20503, message="Service Unavailable"),
        )
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.faults = faults
        self.answer_later: dict[str, float] = {}
        """Texts whose body contains a key are taken that many seconds late: forces the
        order in which concurrent sends finish."""
        self._messages: list[dict[str, Any]] = []

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The Message resources returned with 201, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    def fail_next(
        self,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: float | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this error instead of handling them
        (before authentication, like trouble in front of the API)."""
        failure = self._failure_for(status, retry_after)
        failure = replace(
            failure,
            code=code if code is not None else failure.code,
            message=message or failure.message,
        )
        self._fail_next(failure, count)

    def _failure_for(self, status: int, retry_after: float | None) -> ScriptedFailure:
        code, message = _STATUS_ERRORS.get(status, (status, "Error"))
        return ScriptedFailure(status=status, code=code, message=message, retry_after=retry_after)

    # Called from handler threads.

    def _failure_reply(self, failure: ScriptedFailure) -> Reply:
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        return failure.status, headers, _error(failure.status, failure.code, failure.message)

    def _handle(self, request: ReceivedRequest) -> Reply:
        if not self._authorized(request.headers.get("authorization", "")):
            return (
                401,
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
                _error(401, 20003, "Authentication Error - invalid username"),
            )
        path, _, query = request.path.partition("?")
        match = _MESSAGES_PATH.match(path)
        if (
            match is None
            or request.method not in ("POST", "GET")
            or match["account_sid"] != self.account_sid
        ):
            return (
                404,
                {},
                _error(404, 20404, f"The requested resource {request.path} was not found"),
            )
        if request.method == "GET":
            return self._list_messages(path, {k: v[-1] for k, v in parse_qs(query).items()})
        return self._create_message(request.form)

    def _list_messages(self, path: str, query: dict[str, str]) -> Reply:
        try:
            page_size = min(int(query.get("PageSize", "50")), 1000)
            page = int(query.get("Page", "0"))
        except ValueError:
            return 400, {}, _error(400, 20001, "Invalid paging parameter")
        with self._lock:
            newest_first = [m for m in reversed(self._messages) if _matches(m, query)]
        start = 0
        token = query.get("PageToken", "")
        if token.startswith("PA"):
            # The token names the last message of the previous page.
            after = next((i for i, m in enumerate(newest_first) if m["sid"] == token[2:]), None)
            if after is None:
                return 400, {}, _error(400, 20001, "Invalid PageToken")
            start = after + 1
        chunk = newest_first[start : start + page_size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(**paging: str | int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, **paging})}"

        more = start + page_size < len(newest_first)
        return (
            200,
            {},
            {
                "end": start + len(chunk) - 1 if chunk else start,
                "first_page_uri": uri(Page=0),
                "next_page_uri": (
                    uri(Page=page + 1, PageToken="PA" + chunk[-1]["sid"]) if more else None
                ),
                "page": page,
                "page_size": page_size,
                "previous_page_uri": uri(Page=page - 1) if page > 0 else None,
                "messages": chunk,
                "start": start,
                "uri": f"{path}?{urlencode(query)}" if query else path,
            },
        )

    def _authorized(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return False
        return decoded == f"{self.account_sid}:{self.auth_token}"

    def _create_message(self, form: dict[str, str]) -> Reply:
        to = form.get("To", "")
        sender = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        if not to:
            return 400, {}, _error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return 400, {}, _error(400, 21603, "A 'From' phone number is required.")
        if not body and "MediaUrl" not in form and "ContentSid" not in form:
            return 400, {}, _error(400, 21602, "Message body is required.")
        if to in MAGIC_NUMBERS:
            code, template = MAGIC_NUMBERS[to]
            return 400, {}, _error(400, code, template.format(to=to, sender=sender or service))
        if not _E164.match(to):
            return 400, {}, _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")

        with self._lock:
            late = max((s for part, s in self.answer_later.items() if part in body), default=0)
        if late:
            time.sleep(late)
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC))
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": str(sms_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # With a Messaging Service and no From, Twilio picks the sender later.
            "status": "queued" if sender else "accepted",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self._messages.append(resource)
        return 201, {}, resource


def _matches(message: dict[str, Any], query: dict[str, str]) -> bool:
    if "To" in query and message["to"] != query["To"]:
        return False
    if "From" in query and message["from"] != query["From"]:
        return False
    bounds = {name: query[name] for name in ("DateSent", "DateSent<", "DateSent>") if name in query}
    if not bounds:
        return True
    if message["date_sent"] is None:
        return False
    sent = parsedate_to_datetime(message["date_sent"]).date()
    day = {name: date.fromisoformat(value[:10]) for name, value in bounds.items()}
    return (
        ("DateSent" not in day or sent == day["DateSent"])
        and ("DateSent<" not in day or sent <= day["DateSent<"])
        and ("DateSent>" not in day or sent >= day["DateSent>"])
    )


_STATUS_ERRORS: dict[int, tuple[int, str]] = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
}


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def sms_segments(body: str) -> int:
    """How many SMS parts Twilio bills ``body`` as: GSM-7 (160, or 153 per part when
    concatenated; extension characters count twice) unless a character needs UCS-2
    (70, or 67 per part)."""
    if all(char in _GSM7 or char in _GSM7_EXTENDED for char in body):
        septets = sum(2 if char in _GSM7_EXTENDED else 1 for char in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments("Run a fake Twilio Messages API until killed.")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    add_fault_arguments(parser)
    args = parser.parse_args(argv)
    serve_until_signalled(
        FakeTwilio(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            host=args.host,
            port=args.port,
            delay_seconds=args.delay,
            faults=faults_from_arguments(args),
        )
    )


if __name__ == "__main__":
    main()
