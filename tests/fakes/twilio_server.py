"""A local HTTP server that speaks the part of Twilio's REST API notifier uses: Messages create.

    with FakeTwilio() as twilio:
        ...  # point the adapter at twilio.base_url, then look at twilio.received

Run alone (for the demo or a benchmark): ``python -m tests.fakes.twilio_server --port 8701``.

Behaviour follows Twilio's: form-encoded POST to
/2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP Basic auth (account sid, auth token),
201 with a Message resource, errors as {"code", "message", "more_info", "status"}, and the
test-credential magic numbers (https://www.twilio.com/docs/iam/test-credentials):
+15005550001 invalid (21211), +15005550002 unroutable (21612), +15005550003 no international
permission (21408), +15005550004 blocked / opted out (21610), +15005550009 not a mobile (21614).
"""

from __future__ import annotations

import argparse
import base64
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
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs

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
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    form: dict[str, str]
    """The form-encoded body (last value of each field)."""
    client_address: tuple[str, int]
    """The peer (host, port): one port per TCP connection, so reuse shows keep-alive."""
    received_at: datetime
    received_monotonic: float
    """time.monotonic() on arrival, to measure latency against the same clock in-process."""


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    code: int
    message: str
    retry_after: float | None = None


@dataclass(slots=True)
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[ReceivedRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[ScriptedFailure] = field(default_factory=deque)
    delay_seconds: float = 0.0


class FakeTwilio:
    """A real HTTP/1.1 server on 127.0.0.1 (ephemeral port unless given) in a background
    thread; a context manager. Thread-safe: tests read it while handlers write."""

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
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
    def messages(self) -> list[dict[str, Any]]:
        """The Message resources returned with 201, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.messages)

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
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this error instead of handling them
        (before authentication, like trouble in front of the API)."""
        default_code, default_message = _STATUS_ERRORS.get(status, (status, "Error"))
        failure = ScriptedFailure(
            status=status,
            code=code if code is not None else default_code,
            message=message or default_message,
            retry_after=retry_after,
        )
        with self._state.lock:
            self._state.failures.extend([failure] * count)

    def start(self) -> FakeTwilio:
        # serve_forever notices shutdown() only between polls; 0.5 s (the default) per
        # stop adds up across a test suite.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-twilio",
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

    def __enter__(self) -> FakeTwilio:
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

    def _handle(self, request: ReceivedRequest) -> tuple[int, dict[str, str], dict[str, Any]]:
        failure, delay = self._record(request)
        if delay > 0 and self._stopping.wait(delay):
            return 503, {}, _error(503, 20503, "Service Unavailable")
        if failure is not None:
            headers: dict[str, str] = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            return failure.status, headers, _error(failure.status, failure.code, failure.message)
        if not self._authorized(request.headers.get("authorization", "")):
            return (
                401,
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
                _error(401, 20003, "Authentication Error - invalid username"),
            )
        match = _MESSAGES_PATH.match(request.path.split("?", 1)[0])
        if match is None or request.method != "POST":
            return (
                404,
                {},
                _error(404, 20404, f"The requested resource {request.path} was not found"),
            )
        if match["account_sid"] != self.account_sid:
            return (
                404,
                {},
                _error(404, 20404, f"The requested resource {request.path} was not found"),
            )
        return self._create_message(request.form)

    def _authorized(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return False
        return decoded == f"{self.account_sid}:{self.auth_token}"

    def _create_message(self, form: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
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
        with self._state.lock:
            self._state.messages.append(resource)
        return 201, {}, resource


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeTwilio,
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
        form = {
            name: values[-1]
            for name, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()
        }
        request = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            form=form,
            client_address=(str(self.client_address[0]), int(self.client_address[1])),
            received_at=datetime.now(UTC),
            received_monotonic=time.monotonic(),
        )
        status, headers, payload = self.server.fake._handle(request)
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (a timeout test) or the server is stopping.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Twilio Messages API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each response")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with FakeTwilio(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        host=args.host,
        port=args.port,
        delay_seconds=args.delay,
    ) as fake:
        print(fake.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
