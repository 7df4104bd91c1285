"""Fast fake Twilio and SendGrid servers for the benchmark, one process each.

    python -m bench.fakes twilio --account-sid AC… --auth-token …    # prints its base URL

They speak the same HTTP as tests/fakes/ (the shapes notifier's adapters and the twilio SDK
read) but are built to stay out of the way of the thing measured: one asyncio protocol on
uvloop, no thread per connection, no request log kept, only a receipt per message:

- Twilio: form POST /2010-04-01/Accounts/{sid}/Messages.json, Basic auth, 201 with a Message
  resource (sid "SM" + 32 hex, status "queued", or "accepted" for a Messaging Service).
- SendGrid: JSON POST /v3/mail/send, Bearer auth, 202 with an empty body and X-Message-Id.

A receipt is (request number, arrival time in Unix seconds). The number comes from the
benchmark's marker in the text (``MARKER``) or SendGrid's custom_args, so a receipt can be
matched to the send request's created_at without the fake knowing anything of Kafka.

``--provider-latency-ms`` makes every provider answer wait that long after its request
arrived (a real provider's round trip: ~150 ms), on a timer, so other requests and
connections go on meanwhile; the receipt keeps the arrival time.

Control endpoints for the benchmark itself, answered at once: GET /_bench/stats, GET
/_bench/receipts?start=N (the receipts from index N on) and POST /_bench/latency?ms=N (the
latency from now on, so one fake serves every phase).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import orjson

MARKER = re.compile(r"\bBQ(\d{8})\b")
"""How a request number appears in every body the benchmark sends: "BQ00001234"."""


def marker(number: int) -> str:
    return f"BQ{number:08d}"


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Payload Too Large",
}
_MAX_BODY = 4 * 1024 * 1024


@dataclass
class Receipts:
    """What a fake accepted: every message counted, the marked ones with their arrival."""

    accepted: int = 0
    rejected: int = 0
    numbers: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def record(self, number: int | None) -> None:
        self.accepted += 1
        if number is not None:
            self.numbers.append(number)
            self.times.append(time.time())

    def stats(self) -> dict[str, int]:
        return {"accepted": self.accepted, "rejected": self.rejected, "marked": len(self.numbers)}

    def since(self, start: int) -> dict[str, Any]:
        return {"numbers": self.numbers[start:], "times": self.times[start:]}


Reply = tuple[int, list[tuple[str, str]], bytes]
Handler = Callable[[str, str, dict[str, str], bytes], Reply]
Delay = Callable[[str], float]
"""Seconds the answer to a request for this target waits."""


class HttpServerProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for httpx, requests and urllib: keep-alive, Content-Length
    bodies, pipelining; answers delayed by ``delay`` leave in the order of their requests."""

    def __init__(self, handle: Handler, delay: Delay) -> None:
        self._handle = handle
        self._delay = delay
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closing = False
        # Answers waiting for their time: (due on the loop's clock, bytes, close after).
        self._waiting: deque[tuple[float, bytes, bool]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport has Transport's methods without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._waiting.clear()
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and not self._closing:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = bytes(self._buffer[:head_end]).decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > _MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
                # Nothing notifier sends; refuse rather than buffer without bound.
                self._respond(413, [], b"", close=True)
                return
            body_end = head_end + 4 + length
            if len(self._buffer) < body_end:
                return
            body = bytes(self._buffer[head_end + 4 : body_end])
            del self._buffer[:body_end]
            status, extra, payload = self._handle(method, target, headers, body)
            close = headers.get("connection") == "close"
            self._respond(status, extra, payload, close=close, delay=self._delay(target))

    def _respond(
        self,
        status: int,
        headers: list[tuple[str, str]],
        payload: bytes,
        *,
        close: bool,
        delay: float = 0.0,
    ) -> None:
        if self._transport is None:
            return
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        head += [f"{name}: {value}" for name, value in headers]
        head.append(f"Content-Length: {len(payload)}")
        if close:
            head.append("Connection: close")
            self._closing = True
        answer = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        if delay <= 0 and not self._waiting:
            self._write(answer, close)
            return
        loop = asyncio.get_running_loop()
        # Never before an earlier answer on this connection (HTTP/1.1 keeps their order).
        due = max(loop.time() + delay, self._waiting[-1][0] if self._waiting else 0.0)
        self._waiting.append((due, answer, close))
        if self._timer is None:
            self._timer = loop.call_at(due, self._release)

    def _release(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        while self._waiting and self._waiting[0][0] <= loop.time():
            _, answer, close = self._waiting.popleft()
            self._write(answer, close)
        if self._waiting:
            self._timer = loop.call_at(self._waiting[0][0], self._release)

    def _write(self, answer: bytes, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(answer)
        if close:
            self._transport.close()


_JSON = [("Content-Type", "application/json; charset=utf-8")]


_CONTROL = "/_bench/"


@dataclass
class Controls:
    """What the benchmark reads and sets in a fake: its receipts and its latency."""

    latency_seconds: float = 0.0
    receipts: Receipts = field(default_factory=Receipts)

    def delay(self, target: str) -> float:
        return 0.0 if target.startswith(_CONTROL) else self.latency_seconds

    def answer(self, method: str, target: str) -> Reply | None:
        """The benchmark's own endpoints; None for any other path."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        if parts.path == "/_bench/stats":
            return 200, _JSON, orjson.dumps(self.receipts.stats())
        if parts.path == "/_bench/receipts":
            start = int(query.get("start", "0"))
            return 200, _JSON, orjson.dumps(self.receipts.since(start))
        if parts.path == "/_bench/latency" and method == "POST":
            self.latency_seconds = float(query["ms"]) / 1000.0
            return 200, _JSON, orjson.dumps({"latency_ms": self.latency_seconds * 1000.0})
        return None


def _marked_number(text: str) -> int | None:
    found = MARKER.search(text)
    return int(found.group(1)) if found else None


class FakeTwilio:
    """Messages create, as described in the module docstring."""

    def __init__(self, account_sid: str, auth_token: str, controls: Controls) -> None:
        self.account_sid = account_sid
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._authorization = f"Basic {credentials}"
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.controls = controls
        self.receipts = controls.receipts

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        control = self.controls.answer(method, target)
        if control is not None:
            return control
        if headers.get("authorization") != self._authorization:
            return self._error(401, 20003, "Authentication Error - invalid username")
        if method != "POST" or target.split("?", 1)[0] != self._path:
            return self._error(404, 20404, f"The requested resource {target} was not found")
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        to, text = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        if not to or not text or not (sender or service):
            return self._error(400, 21604, "A 'To' number, a 'From' and a 'Body' are required.")
        self.receipts.record(_marked_number(text))
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # With a Messaging Service and no From, Twilio picks the sender later.
            "status": "queued" if sender else "accepted",
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        return 201, _JSON, orjson.dumps(resource)

    def _error(self, status: int, code: int, message: str) -> Reply:
        self.receipts.rejected += 1
        payload = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return status, _JSON, orjson.dumps(payload)


class FakeSendGrid:
    """Mail Send, as described in the module docstring."""

    def __init__(self, api_key: str, controls: Controls) -> None:
        self._authorization = f"Bearer {api_key}"
        self.controls = controls
        self.receipts = controls.receipts

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        control = self.controls.answer(method, target)
        if control is not None:
            return control
        if headers.get("authorization") != self._authorization:
            return self._error(401, "The provided authorization grant is invalid.", None)
        if method != "POST" or target.split("?", 1)[0] != "/v3/mail/send":
            return self._error(404, "Not found", None)
        try:
            mail = orjson.loads(body)
            to = mail["personalizations"][0]["to"][0]["email"]
            has_content = bool(mail["from"]["email"] and mail["subject"] and mail["content"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return self._error(400, "Bad Request: not a v3 mail", "personalizations")
        if "@" not in to or not has_content:
            return self._error(400, "Does not contain a valid address.", "personalizations.0.to")
        # notifier tags each mail with its message id; the marker is also in the text.
        tagged = str((mail.get("custom_args") or {}).get("notifier_message_id", ""))
        number = _marked_number(tagged)
        if number is None:
            number = _marked_number(str(mail["content"][0].get("value", "")))
        self.receipts.record(number)
        return 202, [("X-Message-Id", secrets.token_urlsafe(16))], b""

    def _error(self, status: int, message: str, field_name: str | None) -> Reply:
        self.receipts.rejected += 1
        payload = {"errors": [{"message": message, "field": field_name, "help": None}]}
        return status, _JSON, orjson.dumps(payload)


async def serve(handle: Handler, delay: Delay, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpServerProtocol(handle, delay), host, port, backlog=512
    )
    bound_port = server.sockets[0].getsockname()[1]
    # The parent reads this line to learn the port.
    print(f"http://{host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fast fake provider until SIGTERM.")
    parser.add_argument("provider", choices=["twilio", "sendgrid"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default="AC" + "0" * 31 + "1")
    parser.add_argument("--auth-token", default="bench-twilio-token")
    parser.add_argument("--api-key", default="SG.bench-key.bench-secret")
    parser.add_argument(
        "--provider-latency-ms",
        type=float,
        default=0.0,
        help="every provider answer waits this long (other requests go on meanwhile)",
    )
    args = parser.parse_args(argv)
    controls = Controls(latency_seconds=args.provider_latency_ms / 1000.0)
    fake: FakeTwilio | FakeSendGrid = (
        FakeTwilio(args.account_sid, args.auth_token, controls)
        if args.provider == "twilio"
        else FakeSendGrid(args.api_key, controls)
    )
    server = serve(fake.handle, controls.delay, args.host, args.port)
    try:
        import uvloop
    except ImportError:  # plain asyncio is slower, but still speaks the same HTTP
        asyncio.run(server)
    else:
        uvloop.run(server)


if __name__ == "__main__":
    main()
