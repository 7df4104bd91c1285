"""A text whose earlier attempt died with its outcome unknown (claimed, never recorded):
before sending it again, Twilio's Messages list is asked whether it already went out. The
real store on both databases, the real Twilio adapter against the fake Twilio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import aiohttp
import pytest

from notifier.adapters.catalogs import GettextCatalogs
from notifier.adapters.clock import SystemClock
from notifier.adapters.provider_http import ProviderHttp, create_session
from notifier.adapters.store import Storage
from notifier.adapters.twilio import TwilioSms
from notifier.domain.model import Channel, DeliveryStatus, OutboundMessage, Role, Sender
from notifier.handlers import DeliveryDependencies, RetryPolicy, deliver_request
from notifier.handlers.delivery import UnknownOutcomeLookups, event_for
from notifier.metrics import PrometheusMetrics
from notifier.ports import ChannelSender, ProviderReceipt
from tests.builders import district, recipient, send_request
from tests.fakes.memory_store import delivery_ports
from tests.fakes.ports import RecordingEvents, ScriptedSender, SteppingClock
from tests.fakes.twilio_server import FakeTwilio

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "lookup-test-token"
PHONE = "+15555550123"


class ProcessKilled(BaseException):
    """Stands for a SIGKILL: nothing after it in the process runs."""


@dataclass
class DiesAfterSending:
    """Twilio takes the text, then the process dies before the answer is recorded."""

    twilio: ChannelSender

    @property
    def provider(self) -> str:
        return self.twilio.provider

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        await self.twilio.send(message)
        raise ProcessKilled


@dataclass
class DiesBeforeSending:
    provider: str = "twilio"

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        raise ProcessKilled


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with create_session(max_connections=8) as provider_session:
        yield provider_session


@dataclass
class Restarts:
    """A first process that dies mid-send, and the process that starts after it."""

    store: Storage
    twilio: FakeTwilio
    sms: TwilioSms
    metrics: PrometheusMetrics

    def process(
        self, sms: ChannelSender, lookups: int = 10, attempts: int = 1
    ) -> DeliveryDependencies:
        return DeliveryDependencies(
            **delivery_ports(self.store),
            senders={
                Channel.SMS: sms,
                Channel.EMAIL: ScriptedSender("email-fake"),
            },
            events=RecordingEvents(),
            catalogs=GettextCatalogs(),
            clock=SteppingClock(),
            metrics=self.metrics,
            retry=RetryPolicy(
                attempts=attempts, max_seconds=5, first_wait_seconds=0.01, longest_wait_seconds=0.05
            ),
            in_flight=asyncio.Semaphore(8),
            lookups=UnknownOutcomeLookups({Channel.SMS: self.sms}, remaining=lookups),
        )

    async def crash(self, dying: ChannelSender) -> None:
        with pytest.raises(ProcessKilled):
            await deliver_request(REQUEST, self.process(dying))

    async def restart(self, lookups: int = 10, attempts: int = 1) -> None:
        await deliver_request(REQUEST, self.process(self.sms, lookups, attempts))

    def posted(self) -> int:
        return sum(1 for r in self.twilio.received if r.method == "POST")

    def lookups(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "notifier_unknown_outcome_lookups_total", {"channel": "sms", "result": result}
        )

    async def texted(self) -> tuple[DeliveryStatus, str | None, int]:
        [row] = [
            r
            for r in await self.store.ledger.deliveries_of_message("msg-1")
            if r.channel is Channel.SMS
        ]
        return row.status, row.provider_message_id, row.attempts


REQUEST = send_request(
    message_id="msg-1",
    sender=Sender("staff-rivera", "Ms. Rivera", "staff"),
    recipient_ids=("guardian-9",),
)


@pytest.fixture
async def restarts(store: Storage, twilio: FakeTwilio, session: aiohttp.ClientSession) -> Restarts:
    await store.directory.upsert_district(district())
    await store.directory.upsert_recipient(
        recipient(id="guardian-9", role=Role.GUARDIAN, language="en", phone=PHONE, email=None)
    )
    sms = TwilioSms(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        api_base_url=twilio.base_url,
        http=ProviderHttp(session, "twilio", 5.0),
    )
    return Restarts(store, twilio, sms, PrometheusMetrics())


async def test_text_a_dead_process_sent_is_recorded_not_sent_again(restarts: Restarts) -> None:
    await restarts.crash(DiesAfterSending(restarts.sms))
    await restarts.restart()

    assert restarts.posted() == 1, "the family got the text once"
    [taken] = restarts.twilio.messages
    assert await restarts.texted() == (DeliveryStatus.SENT, taken["sid"], 2)
    assert restarts.lookups("found") == 1


async def test_text_a_dead_process_never_sent_is_sent_after_the_lookup(
    restarts: Restarts,
) -> None:
    await restarts.crash(DiesBeforeSending())
    await restarts.restart()

    assert restarts.posted() == 1
    [taken] = restarts.twilio.messages
    assert await restarts.texted() == (DeliveryStatus.SENT, taken["sid"], 2)
    assert restarts.lookups("not_found") == 1


async def test_text_is_sent_again_when_twilios_list_cannot_be_read(restarts: Restarts) -> None:
    # A duplicate is better than a lost notice.
    await restarts.crash(DiesAfterSending(restarts.sms))
    restarts.twilio.fail_next(status=429, retry_after=1)
    await restarts.restart()

    assert restarts.posted() == 2
    assert (await restarts.texted())[0] is DeliveryStatus.SENT
    assert restarts.lookups("failed") == 1


async def test_a_list_that_could_not_answer_at_first_is_asked_again(
    restarts: Restarts,
) -> None:
    # After a crash every text of the uncommitted batches is looked up at once: a 429 or a
    # timeout at the first ask must not send the family a second text.
    await restarts.crash(DiesAfterSending(restarts.sms))
    restarts.twilio.fail_next(status=429, count=2)
    await restarts.restart(attempts=3)

    assert restarts.posted() == 1
    assert (await restarts.texted())[0] is DeliveryStatus.SENT
    assert restarts.lookups("found") == 1
    assert (
        restarts.metrics.registry.get_sample_value("notifier_retries_total", {"provider": "twilio"})
        == 2
    )


async def test_lookups_past_the_budget_send_again(restarts: Restarts) -> None:
    await restarts.crash(DiesAfterSending(restarts.sms))
    await restarts.restart(lookups=0)

    assert restarts.posted() == 2
    assert restarts.lookups("over_budget") == 1
    assert not restarts.twilio.received or all(r.method == "POST" for r in restarts.twilio.received)


async def test_same_words_texted_for_another_message_are_not_taken_for_ours(
    restarts: Restarts,
) -> None:
    # The core sends the same reminder twice; the first is recorded, the second's attempt
    # dies before Twilio takes it: the first one's text is not the second's.
    earlier = replace(REQUEST, message_id="msg-0", request_id="req-0")
    await deliver_request(earlier, restarts.process(restarts.sms))
    await restarts.crash(DiesBeforeSending())
    await restarts.restart()

    assert restarts.posted() == 2
    assert restarts.lookups("not_found") == 1


async def test_a_family_texted_together_is_not_texted_again_for_the_one_left_unrecorded(
    restarts: Restarts,
) -> None:
    # One text for both guardians on the phone; the process died after recording the
    # answer for one of them. The other's text alone ("For Dennis: ...") would match no
    # text in Twilio's list: the family would be texted twice.
    await restarts.store.directory.upsert_recipient(
        recipient(
            id="guardian-10",
            first_name="Maya",
            role=Role.GUARDIAN,
            language="en",
            phone=PHONE,
            email=None,
        )
    )
    family = replace(REQUEST, recipient_ids=("guardian-9", "guardian-10"))
    with pytest.raises(ProcessKilled):
        await deliver_request(family, restarts.process(DiesAfterSending(restarts.sms)))
    [taken] = restarts.twilio.messages
    assert taken["body"].startswith("For Maya and Dennis: ")
    rows = {r.recipient_id: r for r in await restarts.store.ledger.deliveries_of_message("msg-1")}
    await restarts.store.ledger.record_event(
        event_for(
            rows["guardian-10"],
            DeliveryStatus.SENT,
            SystemClock(),
            provider="twilio",
            provider_message_id=taken["sid"],
        )
    )

    await deliver_request(family, restarts.process(restarts.sms))

    assert restarts.posted() == 1, "the family got one text"
    texted = {r.recipient_id: r for r in await restarts.store.ledger.deliveries_of_message("msg-1")}
    assert {
        (texted[g].status, texted[g].provider_message_id) for g in ("guardian-9", "guardian-10")
    } == {(DeliveryStatus.SENT, taken["sid"])}
