"""TwilioSms through the real twilio SDK against a fake Twilio HTTP server."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from notifier.adapters.provider_http import ProviderHttp, create_session
from notifier.adapters.twilio import TwilioSms
from notifier.domain.model import Channel, OutboundMessage, Reason, RenderedSms
from notifier.ports import (
    PermanentProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from tests.fakes.twilio_server import FakeTwilio

ACCOUNT_SID = "AC" + "1234567890abcdef" * 2
AUTH_TOKEN = "test-auth-token"
SENDER_NUMBER = "+15005550006"
MESSAGING_SERVICE = "MG" + "fedcba0987654321" * 2
STATUS_CALLBACK = "https://notifier.example.org/webhooks/twilio/status"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with create_session(max_connections=8) as session:
        yield session


def adapter(
    http_client: aiohttp.ClientSession,
    base_url: str,
    *,
    auth_token: str = AUTH_TOKEN,
    timeout_seconds: float = 5.0,
    status_callback_url: str | None = STATUS_CALLBACK,
) -> TwilioSms:
    return TwilioSms(
        account_sid=ACCOUNT_SID,
        auth_token=auth_token,
        api_base_url=base_url,
        http=ProviderHttp(http_client, "twilio", timeout_seconds),
        status_callback_url=status_callback_url,
    )


def sms(to: str = "+14155550123", sender: str = SENDER_NUMBER) -> OutboundMessage:
    return OutboundMessage(
        delivery_id="dlv-1",
        message_id="msg-1",
        conversation_id="conv-1",
        recipient_id="rcp-1",
        channel=Channel.SMS,
        to=to,
        language="en",
        sms=RenderedSms(body="Ms. Rivera: Field trip forms are due Friday."),
        sender_address=sender,
        sender_name="Lincoln Elementary",
    )


async def test_sms_is_posted_as_twilio_form_with_basic_auth(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    receipt = await adapter(http_client, twilio.base_url).send(sms())

    [request] = twilio.received
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {
        "To": "+14155550123",
        "From": SENDER_NUMBER,
        "Body": "Ms. Rivera: Field trip forms are due Friday.",
        "StatusCallback": STATUS_CALLBACK,
    }
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == twilio.messages[0]["sid"]
    assert str(receipt.provider_message_id).startswith("SM")


async def test_messaging_service_sender_goes_as_messaging_service_sid(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    await adapter(http_client, twilio.base_url).send(sms(sender=MESSAGING_SERVICE))

    [request] = twilio.received
    assert request.form["MessagingServiceSid"] == MESSAGING_SERVICE
    assert "From" not in request.form


async def test_status_callback_is_left_out_when_not_configured(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    await adapter(http_client, twilio.base_url, status_callback_url=None).send(sms())

    [request] = twilio.received
    assert "StatusCallback" not in request.form


async def test_invalid_number_is_permanent_invalid_address(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms(to="555-0123"))

    assert raised.value.reason is Reason.INVALID_ADDRESS
    assert raised.value.code == "21211"
    assert raised.value.provider == "twilio"


@pytest.mark.parametrize(
    ("to", "code", "reason"),
    [
        pytest.param("+15005550001", "21211", Reason.INVALID_ADDRESS, id="invalid-number"),
        pytest.param("+15005550009", "21614", Reason.INVALID_ADDRESS, id="not-a-mobile"),
        pytest.param("+15005550004", "21610", Reason.OPTED_OUT, id="replied-stop"),
        pytest.param("+15005550002", "21612", Reason.UNREACHABLE, id="cannot-route"),
        pytest.param("+15005550003", "21408", Reason.UNREACHABLE, id="region-not-enabled"),
    ],
)
async def test_recipient_error_codes_are_permanent_with_their_reason(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession, to: str, code: str, reason: Reason
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms(to=to))

    assert raised.value.reason is reason
    assert raised.value.code == code


async def test_a_landline_refused_at_send_is_an_invalid_address(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    # The API refuses texts to a landline outright where Twilio doesn't try them (21635):
    # the number's fault, not our account's, so it must not count against Twilio's circuit.
    twilio.fail_next(status=400, code=21635, message="'To' number cannot be a landline")

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms())

    assert raised.value.reason is Reason.INVALID_ADDRESS
    assert raised.value.code == "21635"


async def test_other_client_error_is_permanent_provider_error(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    twilio.fail_next(
        status=400, code=21606, message="The 'From' phone number provided is not valid."
    )

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms())

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "21606"


async def test_wrong_credentials_are_permanent_provider_error(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, twilio.base_url, auth_token="wrong").send(sms())

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "20003"


async def test_server_error_is_transient_and_not_retried_by_the_adapter(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    twilio.fail_next(status=500, count=3)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms())

    assert raised.value.code == "20500"
    assert len(twilio.received) == 1


async def test_rate_limit_is_transient_with_retry_after(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    twilio.fail_next(status=429, retry_after=7)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms())

    assert raised.value.retry_after == 7.0


async def test_rate_limit_without_retry_after_leaves_the_delay_to_the_caller(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    twilio.fail_next(status=429)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, twilio.base_url).send(sms())

    assert raised.value.retry_after is None


async def test_unanswered_request_is_unknown_outcome(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    twilio.delay_seconds = 10

    with pytest.raises(UnknownOutcomeError):
        await adapter(http_client, twilio.base_url, timeout_seconds=0.3).send(sms())

    assert len(twilio.received) == 1


async def test_refused_connection_is_transient(http_client: aiohttp.ClientSession) -> None:
    # Bound but not listening: the port stays ours and every connect is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        with pytest.raises(TransientProviderError):
            await adapter(http_client, f"http://127.0.0.1:{port}").send(sms())


async def test_edge_and_region_from_the_environment_do_not_move_requests(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    receipt = await adapter(http_client, twilio.base_url).send(sms())

    assert len(twilio.received) == 1
    assert receipt.provider_message_id == twilio.messages[0]["sid"]


async def test_consecutive_sends_reuse_one_connection(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    sender = adapter(http_client, twilio.base_url)

    await sender.send(sms())
    await sender.send(sms())

    first, second = twilio.received
    assert first.client_address == second.client_address


async def test_alphanumeric_sender_starting_with_mg_goes_as_from(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    await adapter(http_client, twilio.base_url).send(sms(sender="MGHIGH"))

    [request] = twilio.received
    assert request.form["From"] == "MGHIGH"
    assert "MessagingServiceSid" not in request.form


# Asking Twilio whether a text of unknown outcome already went out (the Messages list).


def _text(body: str, to: str = "+14155550123") -> OutboundMessage:
    return replace(sms(to=to), sms=RenderedSms(body=body))


async def test_text_sent_by_a_dead_attempt_is_found_in_twilios_list(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    claimed = datetime.now(UTC)
    sms_api = adapter(http_client, twilio.base_url)
    taken = await sms_api.send(sms())
    # Later texts to the same number, and one to another number, come first in the list.
    await sms_api.send(_text("Another message"))
    await sms_api.send(_text("Ms. Rivera: Field trip forms are due Friday.", to="+14155550199"))

    found = await sms_api.find_sent(sms(), claimed)

    assert found == taken
    listed = [r for r in twilio.received if r.method == "GET"]
    assert len(listed) == 1
    query = parse_qs(urlsplit(listed[0].path).query)
    assert query["To"] == ["+14155550123"]
    # A message still queued has no date_sent: filtering on it would miss ours.
    assert not any(name.startswith("DateSent") for name in query)


async def test_text_never_sent_is_not_found(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    sms_api = adapter(http_client, twilio.base_url)
    await sms_api.send(_text("Something else entirely"))

    assert await sms_api.find_sent(sms(), datetime.now(UTC) - timedelta(seconds=5)) is None


async def test_same_text_sent_before_the_claim_is_not_taken_for_ours(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    sms_api = adapter(http_client, twilio.base_url)
    await sms_api.send(sms())

    later_claim = datetime.now(UTC) + timedelta(minutes=5)
    assert await sms_api.find_sent(sms(), later_claim) is None


async def test_lookup_follows_twilios_next_page_and_stops_at_its_bound(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    claimed = datetime.now(UTC)
    paged = TwilioSms(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        api_base_url=twilio.base_url,
        http=ProviderHttp(http_client, "twilio", 5.0),
        lookup_page_size=2,
        lookup_pages=2,
    )
    taken = await paged.send(sms())
    for n in range(3):
        await paged.send(_text(f"Newer message {n}"))

    # Ours is the fourth newest: on the second page of two.
    assert await paged.find_sent(sms(), claimed) == taken
    pages = [r.path for r in twilio.received if r.method == "GET"]
    assert len(pages) == 2
    assert "PageToken=PA" in pages[1]

    for n in range(2):
        await paged.send(_text(f"Newest message {n}"))
    # Now on the third page: past the bound, so not found (and sent again by the caller).
    assert await paged.find_sent(sms(), claimed) is None


async def test_lookup_twilio_refuses_raises_so_the_text_is_sent_again(
    twilio: FakeTwilio, http_client: aiohttp.ClientSession
) -> None:
    sms_api = adapter(http_client, twilio.base_url)
    twilio.fail_next(status=429, retry_after=1)

    with pytest.raises(TransientProviderError):
        await sms_api.find_sent(sms(), datetime.now(UTC))
