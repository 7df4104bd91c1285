"""A local HTTP server that speaks the part of SendGrid's v3 API notifier uses: Mail Send and
Delete a bounce.

    with FakeSendGrid() as sendgrid:
        ...  # point the adapter at sendgrid.base_url, then look at sendgrid.received

Run alone (for the demo or a benchmark): ``python -m tests.fakes.sendgrid_server --port 8702``.

Behaviour follows SendGrid's
(https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send#responses): JSON POST
to /v3/mail/send with "Authorization: Bearer <key>", 202 with an empty body and X-Message-Id,
errors as {"errors": [{"message", "field", "help"}]}, 429 with X-RateLimit-* headers. The
request is validated the way SendGrid rejects common mistakes: personalizations with a 'to'
list of valid emails, from.email, subject, content with text/plain first, string custom_args.

The bounce list (https://www.twilio.com/docs/sendgrid/api-reference/bounces-api/delete-a-bounce):
DELETE /v3/suppression/bounces/{email} answers 204 with an empty body when the address was
listed and 404 when it was not (the reference documents only 204 and 401; the 404 is what
users report, https://github.com/sendgrid/docs/issues/6194; its message here is ours). Mail
to a listed address is still accepted with 202, as SendGrid does before dropping it with a
"Bounced Address" event; ``AcceptedMail.bounced`` says which recipients that would hit.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

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

DEFAULT_API_KEY = "SG.fake-key.fake-secret"

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_CONTENT_ORDER = ("text/plain", "text/html")
_BOUNCE_PATH = re.compile(r"^/v3/suppression/bounces/(?P<email>[^/?]+)$")


@dataclass(frozen=True, slots=True)
class AcceptedMail:
    message_id: str
    body: dict[str, Any]
    bounced: tuple[str, ...] = ()
    """Recipients on the bounce list when it was accepted: SendGrid would drop the mail to
    them without trying."""


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    message: str
    retry_after: float | None = None


class FakeSendGrid(FaultInjectingApi[ScriptedFailure]):
    """SendGrid's Mail Send and bounce list APIs, as described above; ``faults`` (a
    FaultPlan) adds random 500s, 429s and hangs."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(
            name="fake-sendgrid",
            host=host,
            port=port,
            delay_seconds=delay_seconds,
            unavailable=ScriptedFailure(status=503, message="Service Unavailable"),
        )
        self.api_key = api_key
        self.faults = faults
        self._accepted: list[AcceptedMail] = []
        self._bounces: set[str] = set()

    @property
    def accepted(self) -> list[AcceptedMail]:
        """The mails answered with 202, oldest first (a copy)."""
        with self._lock:
            return list(self._accepted)

    @property
    def bounces(self) -> set[str]:
        """The addresses on the bounce list, lower-cased (a copy)."""
        with self._lock:
            return set(self._bounces)

    def add_bounce(self, email: str) -> None:
        """Put ``email`` on the bounce list, as a hard bounce would."""
        with self._lock:
            self._bounces.add(email.lower())

    def fail_next(
        self,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this error instead of handling them
        (before authentication, like trouble in front of the API). For 429, ``retry_after``
        becomes X-RateLimit-Reset (epoch seconds, as SendGrid sends it); otherwise
        Retry-After."""
        failure = self._failure_for(status, retry_after)
        if message:
            failure = replace(failure, message=message)
        self._fail_next(failure, count)

    def _failure_for(self, status: int, retry_after: float | None) -> ScriptedFailure:
        return ScriptedFailure(
            status=status,
            message=_STATUS_MESSAGES.get(status, "Error"),
            retry_after=retry_after,
        )

    # Called from handler threads.

    def _failure_reply(self, failure: ScriptedFailure) -> Reply:
        return failure.status, _failure_headers(failure), _errors((failure.message, None))

    def _handle(self, request: ReceivedRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return (
                401,
                {},
                _errors(("The provided authorization grant is invalid, expired, or revoked", None)),
            )
        path = request.path.split("?", 1)[0]
        bounce = _BOUNCE_PATH.match(path)
        if request.method == "DELETE" and bounce is not None:
            return self._delete_bounce(unquote(bounce["email"]))
        if request.method != "POST" or path != "/v3/mail/send":
            return 404, {}, _errors(("Not Found", None))
        body = request.body
        if not isinstance(body, dict):
            return 400, {}, _errors(("Bad Request", None))
        problems = validate_mail(body)
        if problems:
            return 400, {}, _errors(*problems)
        message_id = secrets.token_urlsafe(16)  # 22 characters, like SendGrid's
        with self._lock:
            bounced = tuple(email for email in _recipients(body) if email.lower() in self._bounces)
            self._accepted.append(AcceptedMail(message_id=message_id, body=body, bounced=bounced))
        return 202, {"X-Message-Id": message_id}, None

    def _delete_bounce(self, email: str) -> Reply:
        with self._lock:
            listed = email.lower() in self._bounces
            self._bounces.discard(email.lower())
        if not listed:
            return 404, {}, _errors((f"{email} is not on the bounce list", None))
        return 204, {}, None


_STATUS_MESSAGES: dict[int, str] = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    413: "The JSON payload you have included in your request is too large.",
    429: "too many requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _failure_headers(failure: ScriptedFailure) -> dict[str, str]:
    if failure.retry_after is None:
        return {}
    if failure.status == 429:
        return {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(time.time() + failure.retry_after)),
        }
    return {"Retry-After": f"{failure.retry_after:g}"}


def _errors(*problems: tuple[str, str | None]) -> dict[str, Any]:
    return {
        "errors": [
            {"message": message, "field": field_name, "help": _HELP if field_name else None}
            for message, field_name in problems
        ]
    }


def _recipients(body: dict[str, Any]) -> list[str]:
    """Every to, cc and bcc address of a mail that passed validate_mail."""
    return [
        address["email"]
        for personalization in body["personalizations"]
        for field_name in ("to", "cc", "bcc")
        for address in personalization.get(field_name) or []
        if isinstance(address, dict) and isinstance(address.get("email"), str)
    ]


def validate_mail(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(message, field) for each way ``body`` breaks SendGrid's Mail Send rules we check."""
    problems: list[tuple[str, str | None]] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(
            (
                "The personalizations field is required and must have at least one"
                " personalization.",
                "personalizations",
            )
        )
        personalizations = []
    for p_index, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            problems.append(
                (
                    "The to array is required for all personalization objects, and must have"
                    " at least one email object with a valid email address.",
                    f"personalizations.{p_index}.to",
                )
            )
            continue
        for t_index, recipient in enumerate(to):
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not isinstance(email, str) or not _EMAIL.match(email):
                problems.append(
                    (
                        "Does not contain a valid address.",
                        f"personalizations.{p_index}.to.{t_index}.email",
                    )
                )

    sender = body.get("from")
    if not isinstance(sender, dict) or "email" not in sender:
        problems.append(
            (
                "The from object must be provided for every email send. It is an object that"
                " requires the email parameter, but may also contain a name parameter.",
                "from",
            )
        )
    elif not isinstance(sender["email"], str) or not _EMAIL.match(sender["email"]):
        problems.append(("The from email does not contain a valid address.", "from.email"))

    if not body.get("subject") and not body.get("template_id"):
        problems.append(
            (
                "The subject is required. You can get around this requirement if you use a"
                " template with a subject defined or if every personalization has a subject"
                " defined.",
                "subject",
            )
        )

    content = body.get("content")
    if not body.get("template_id") and (not isinstance(content, list) or not content):
        problems.append(
            (
                "Unless a valid template_id is provided, the content parameter is required."
                " There must be at least one defined content block.",
                "content",
            )
        )
    elif isinstance(content, list):
        types = [block.get("type") if isinstance(block, dict) else None for block in content]
        expected = [kind for kind in _CONTENT_ORDER if kind in types]
        if types[: len(expected)] != expected:
            problems.append(
                (
                    "If present, text/plain content must be first, followed by text/html,"
                    " followed by any other content.",
                    "content",
                )
            )

    custom_args = body.get("custom_args", {})
    if not isinstance(custom_args, dict):
        problems.append(("Invalid type. Expected: object.", "custom_args"))
    else:
        for key, value in custom_args.items():
            if not isinstance(value, str):
                problems.append(
                    (
                        f"Invalid type. Expected: string, given: {type(value).__name__}.",
                        f"custom_args.{key}",
                    )
                )
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments("Run a fake SendGrid Mail Send API until killed.")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--bounce", action="append", default=[], help="an address on the bounce list (repeatable)"
    )
    add_fault_arguments(parser)
    args = parser.parse_args(argv)
    fake = FakeSendGrid(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        delay_seconds=args.delay,
        faults=faults_from_arguments(args),
    )
    for email in args.bounce:
        fake.add_bounce(email)
    serve_until_signalled(fake)


if __name__ == "__main__":
    main()
