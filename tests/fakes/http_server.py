"""The machinery under each fake provider: a real keep-alive HTTP/1.1 server in a background
thread that records every request, can be told to fail or stall, and answers in JSON.

A fake provider subclasses ``FakeJsonApi`` and says only how the provider answers: its
``_handle`` for a request that gets through, its ``_failure_reply`` for a scripted failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs

Reply = tuple[int, dict[str, str], Any]
"""(status, headers, payload): the payload is sent as JSON, or as an empty body if None."""

FailureT = TypeVar("FailureT")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    content: bytes
    """The body as received."""
    client_address: tuple[str, int]
    """The peer (host, port): one port per TCP connection, so reuse shows keep-alive."""
    received_at: datetime
    received_monotonic: float
    """time.monotonic() on arrival, to measure latency against the same clock in-process."""

    @property
    def form(self) -> dict[str, str]:
        """The form-encoded body (last value of each field)."""
        fields = parse_qs(self.content.decode("utf-8"), keep_blank_values=True)
        return {name: values[-1] for name, values in fields.items()}

    @property
    def body(self) -> Any:
        """The parsed JSON body; None when it was empty or not JSON."""
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            return None


class FakeJsonApi(ABC, Generic[FailureT]):
    """A real HTTP/1.1 server on 127.0.0.1 (ephemeral port unless given) in a background
    thread; a context manager. Thread-safe: tests read it while handlers write.

    Subclasses keep whatever else they record under ``self._lock``."""

    content_type = "application/json"

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        delay_seconds: float,
        unavailable: FailureT,
    ) -> None:
        """``unavailable`` is the failure answered to a request still held by
        ``delay_seconds`` when the server stops."""
        self._name = name
        self._host = host
        self._unavailable = unavailable
        self._lock = threading.Lock()
        self._received: list[ReceivedRequest] = []
        self._failures: deque[FailureT] = deque()
        self._delay_seconds = delay_seconds
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler, fake=self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def delay_seconds(self) -> float:
        with self._lock:
            return self._delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, value: float) -> None:
        """Hold every response this long after the request arrives (0 for none)."""
        with self._lock:
            self._delay_seconds = value

    def start(self) -> Self:
        # serve_forever notices shutdown() only between polls; 0.5 s (the default) per
        # stop adds up across a test suite.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self._name,
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _fail_next(self, failure: FailureT, count: int) -> None:
        """Answer the next ``count`` requests with ``failure`` before ``_handle`` sees them."""
        with self._lock:
            self._failures.extend([failure] * count)

    # Called from handler threads.

    def _answer(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._received.append(request)
            failure = self._failures.popleft() if self._failures else None
            delay = self._delay_seconds
        if delay > 0 and self._stopping.wait(delay):
            return self._failure_reply(self._unavailable)
        if failure is not None:
            return self._failure_reply(failure)
        return self._handle(request)

    @abstractmethod
    def _failure_reply(self, failure: FailureT) -> Reply: ...

    @abstractmethod
    def _handle(self, request: ReceivedRequest) -> Reply: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a client opening dozens of connections at once
    # (as notifier's pool does under load) would see SYNs dropped and connects time out,
    # which no real provider's front door does.
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeJsonApi[Any],
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

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            content=self.rfile.read(length) if length else b"",
            client_address=(str(self.client_address[0]), int(self.client_address[1])),
            received_at=datetime.now(UTC),
            received_monotonic=time.monotonic(),
        )
        fake = self.server.fake
        status, headers, payload = fake._answer(request)
        body = json.dumps(payload).encode() if payload is not None else b""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if body:
                self.send_header("Content-Type", fake.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (a timeout test) or the server is stopping.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def server_arguments(description: str) -> argparse.ArgumentParser:
    """A command line parser with the options every fake takes: --host, --port, --delay."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each response")
    return parser


def serve_until_signalled(fake: FakeJsonApi[Any]) -> None:
    """Start ``fake``, print its base URL, and serve until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with fake:
        print(fake.base_url, flush=True)
        stop.wait()
