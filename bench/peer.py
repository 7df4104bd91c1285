"""The peer notifier is measured against: GOV.UK Notify's shape, one Celery task per text or
email, each calling the vendor's SDK, Redis as the broker, no database.

Run by the bench-tools virtualenv's Python (Celery, twilio, sendgrid; see
bench/tools-requirements.txt), never by notifier's: it imports nothing of notifier or of the
rest of bench/. The benchmark (bench/peer_flood.py) starts it in two ways:

    python -m bench.peer worker --pool prefork --concurrency 8    # the worker, until SIGTERM
    python -m bench.peer enqueue     # JSON lines on stdin, each a list of task arguments

Both read their settings from the environment (``BENCH_PEER_*``, see ``PeerSettings``).
The SDK clients are made once per process, or per thread in the threads pool (requests'
Session is not meant to be shared between threads), as a careful Celery app would: keeping
connections open is the SDK's one saving and it keeps it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from html import escape
from importlib.metadata import version
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from twilio.rest import Client

TASK = "notify"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class PeerSettings:
    broker_url: str
    twilio_url: str
    twilio_account_sid: str
    twilio_auth_token: str
    sendgrid_url: str
    sendgrid_api_key: str

    @classmethod
    def from_environment(cls) -> PeerSettings:
        return cls(
            broker_url=os.environ["BENCH_PEER_BROKER_URL"],
            twilio_url=os.environ["BENCH_PEER_TWILIO_URL"],
            twilio_account_sid=os.environ["BENCH_PEER_TWILIO_ACCOUNT_SID"],
            twilio_auth_token=os.environ["BENCH_PEER_TWILIO_AUTH_TOKEN"],
            sendgrid_url=os.environ["BENCH_PEER_SENDGRID_URL"],
            sendgrid_api_key=os.environ["BENCH_PEER_SENDGRID_API_KEY"],
        )


class _Clients(threading.local):
    """One Twilio and one SendGrid client per thread (threading.local calls ``__init__``
    again in each thread); a prefork child has its own copy of the parent's. Neither opens
    a connection before its first request."""

    def __init__(self, settings: PeerSettings) -> None:
        self.twilio = Client(settings.twilio_account_sid, settings.twilio_auth_token)
        # The SDK builds every URL from its domain's base_url (https://api.twilio.com).
        self.twilio.api.base_url = settings.twilio_url
        self.sendgrid = SendGridAPIClient(settings.sendgrid_api_key, host=settings.sendgrid_url)


def create_app(settings: PeerSettings) -> Celery:
    app = Celery("bench-peer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )
    clients = _Clients(settings)
    worker_process_init.connect(_die_with_the_worker, weak=False)

    @app.task(name=TASK)
    def notify(channel: str, to: str, body: str, sender: dict[str, str]) -> str:
        if channel == "sms":
            message = clients.twilio.messages.create(
                to=to, messaging_service_sid=sender["sms"], body=body
            )
            return str(message.sid)
        mail = Mail(
            from_email=(sender["email"], sender["name"]),
            to_emails=to,
            subject=f"A message from {sender['name']}",
            plain_text_content=body,
            html_content=f"<p>{escape(body)}</p>",
        )
        response = clients.sendgrid.send(mail)
        return str(response.headers.get("X-Message-Id", ""))

    return app


def _die_with_the_worker(**_: Any) -> None:
    # A prefork child must not outlive the worker the benchmark stops or kills.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def enqueue(app: Celery) -> int:
    """One task per notification, for each JSON line of stdin (a list of task arguments),
    until stdin ends; the number of tasks sent."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for line in sys.stdin:
            for arguments in json.loads(line):
                app.send_task(TASK, args=arguments, producer=producer)
                sent += 1
    return sent


def main(argv: list[str]) -> int:
    if argv == ["versions"]:
        print(json.dumps({name: version(name) for name in ("celery", "twilio", "sendgrid")}))
        return 0
    app = create_app(PeerSettings.from_environment())
    if argv[:1] == ["worker"]:
        app.worker_main(argv)
        return 0
    if argv == ["enqueue"]:
        print(f"enqueued {enqueue(app)} tasks", file=sys.stderr)
        return 0
    print("usage: python -m bench.peer worker [celery options] | enqueue | versions")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
