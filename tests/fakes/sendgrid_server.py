"""A local HTTP server that speaks the part of SendGrid's v3 API notifier uses: Mail Send.

    with FakeSendGrid() as sendgrid:
        ...  # point the adapter at sendgrid.base_url, then look at sendgrid.received

Run alone (for the demo or a benchmark): ``python -m tests.fakes.sendgrid_server --port 8702``.

Behaviour follows SendGrid's
(https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send#responses): JSON POST
to /v3/mail/send with "Authorization: Bearer <key>", 202 with an empty body and X-Message-Id,
errors as {"errors": [{"message", "field", "help"}]}, 429 with X-RateLimit-* headers. The
request is validated the way SendGrid rejects common mistakes: personalizations with a 'to'
list of valid emails, from.email, subject, content with text/plain first, string custom_args.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import secrets
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

DEFAULT_API_KEY = "SG.fake-key.fake-secret"

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_CONTENT_ORDER = ("text/plain", "text/html")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body; None when it was empty or not JSON."""
    client_address: tuple[str, int]
    """The peer (host, port): one port per TCP connection, so reuse shows keep-alive."""
    received_at: datetime
    received_monotonic: float
    """time.monotonic() on arrival, to measure latency against the same clock in-process."""


@dataclass(frozen=True, slots=True)
class AcceptedMail:
    message_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    message: str
    retry_after: float | None = None


@dataclass(slots=True)
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[ReceivedRequest] = field(default_factory=list)
    accepted: list[AcceptedMail] = field(default_factory=list)
    failures: deque[ScriptedFailure] = field(default_factory=deque)
    delay_seconds: float = 0.0


class FakeSendGrid:
    """A real HTTP/1.1 server on 127.0.0.1 (ephemeral port unless given) in a background
    thread; a context manager. Thread-safe: tests read it while handlers write."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self._host = host
        self._state = _State(delay_seconds=delay_seconds)
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler, fake=self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def accepted(self) -> list[AcceptedMail]:
        """The mails answered with 202, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.accepted)

    @property
    def delay_seconds(self) -> float:
        with self._state.lock:
            return self._state.delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, value: float) -> None:
        """Hold every response this long after the request arrives (0 for none)."""
        with self._state.lock:
            self._state.delay_seconds = value

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
        failure = ScriptedFailure(
            status=status,
            message=message or _STATUS_MESSAGES.get(status, "Error"),
            retry_after=retry_after,
        )
        with self._state.lock:
            self._state.failures.extend([failure] * count)

    def start(self) -> FakeSendGrid:
        # serve_forever notices shutdown() only between polls; 0.5 s (the default) per
        # stop adds up across a test suite.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-sendgrid",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Called from handler threads.

    def _record(self, request: ReceivedRequest) -> tuple[ScriptedFailure | None, float]:
        with self._state.lock:
            self._state.received.append(request)
            failure = self._state.failures.popleft() if self._state.failures else None
            return failure, self._state.delay_seconds

    def _handle(self, request: ReceivedRequest) -> tuple[int, dict[str, str], Any]:
        failure, delay = self._record(request)
        if delay > 0 and self._stopping.wait(delay):
            return 503, {}, _errors(("Service Unavailable", None))
        if failure is not None:
            return failure.status, _failure_headers(failure), _errors((failure.message, None))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return (
                401,
                {},
                _errors(("The provided authorization grant is invalid, expired, or revoked", None)),
            )
        if request.method != "POST" or request.path.split("?", 1)[0] != "/v3/mail/send":
            return 404, {}, _errors(("Not Found", None))
        if not isinstance(request.body, dict):
            return 400, {}, _errors(("Bad Request", None))
        problems = validate_mail(request.body)
        if problems:
            return 400, {}, _errors(*problems)
        message_id = secrets.token_urlsafe(16)  # 22 characters, like SendGrid's
        with self._state.lock:
            self._state.accepted.append(AcceptedMail(message_id=message_id, body=request.body))
        return 202, {"X-Message-Id": message_id}, None


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeSendGrid,
    ) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=parsed,
            client_address=(str(self.client_address[0]), int(self.client_address[1])),
            received_at=datetime.now(UTC),
            received_monotonic=time.monotonic(),
        )
        status, headers, payload = self.server.fake._handle(request)
        body = json.dumps(payload).encode() if payload is not None else b""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (a timeout test) or the server is stopping.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake SendGrid Mail Send API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each response")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with FakeSendGrid(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        delay_seconds=args.delay,
    ) as fake:
        print(fake.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
