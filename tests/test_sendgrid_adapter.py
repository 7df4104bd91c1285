"""SendGridEmail with the sendgrid mail helpers against a fake SendGrid HTTP server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import aiohttp
import pytest

from notifier.adapters.provider_http import ProviderHttp, create_session
from notifier.adapters.sendgrid import SendGridEmail
from notifier.domain.model import Channel, OutboundMessage, Reason, RenderedEmail
from notifier.ports import (
    PermanentProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from tests.fakes.sendgrid_server import FakeSendGrid

API_KEY = "SG.test-key.test-secret"


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with create_session(max_connections=8) as session:
        yield session


def adapter(
    http_client: aiohttp.ClientSession,
    base_url: str,
    *,
    api_key: str = API_KEY,
    timeout_seconds: float = 5.0,
) -> SendGridEmail:
    return SendGridEmail(
        api_key=api_key,
        api_base_url=base_url,
        http=ProviderHttp(http_client, "sendgrid", timeout_seconds),
    )


def email(
    to: str = "parent@example.org", sender: str = "no-reply@lincoln.example.org"
) -> OutboundMessage:
    return OutboundMessage(
        delivery_id="dlv-1",
        message_id="msg-1",
        conversation_id="conv-1",
        recipient_id="rcp-1",
        channel=Channel.EMAIL,
        to=to,
        language="en",
        email=RenderedEmail(
            subject="New message from Ms. Rivera",
            text="Field trip forms are due Friday.",
            html="<p>Field trip forms are due Friday.</p>",
        ),
        sender_address=sender,
        sender_name="Lincoln Elementary",
    )


async def test_mail_is_posted_as_v3_json_with_bearer_key_and_our_ids(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    receipt = await adapter(http_client, sendgrid.base_url).send(email())

    [request] = sendgrid.received
    assert request.method == "POST"
    assert request.path == "/v3/mail/send"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["personalizations"] == [{"to": [{"email": "parent@example.org"}]}]
    assert body["from"] == {"email": "no-reply@lincoln.example.org", "name": "Lincoln Elementary"}
    assert body["subject"] == "New message from Ms. Rivera"
    assert body["content"] == [
        {"type": "text/plain", "value": "Field trip forms are due Friday."},
        {"type": "text/html", "value": "<p>Field trip forms are due Friday.</p>"},
    ]
    assert body["custom_args"] == {
        "notifier_delivery_id": "dlv-1",
        "notifier_message_id": "msg-1",
        "notifier_recipient_id": "rcp-1",
        "notifier_conversation_id": "conv-1",
    }
    assert receipt.provider == "sendgrid"
    assert receipt.provider_message_id == sendgrid.accepted[0].message_id
    assert len(receipt.provider_message_id) == 22


@pytest.mark.parametrize("to", ["not-an-address", "parent@nowhere"])
async def test_invalid_recipient_address_is_permanent_invalid_address(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession, to: str
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(email(to=to))

    assert raised.value.reason is Reason.INVALID_ADDRESS
    assert raised.value.code == "400"
    assert "personalizations.0.to.0.email" in raised.value.detail


async def test_invalid_sender_address_is_permanent_provider_error(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(email(sender="lincoln-elementary"))

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert "from" in raised.value.detail


async def test_wrong_api_key_is_permanent_provider_error(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url, api_key="SG.wrong.key").send(email())

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "401"
    assert "authorization grant is invalid" in raised.value.detail


@pytest.mark.parametrize("status", [403, 413])
async def test_refused_request_is_permanent_provider_error(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession, status: int
) -> None:
    sendgrid.fail_next(status=status)

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(email())

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == str(status)


async def test_server_error_is_transient_and_not_retried_by_the_adapter(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.fail_next(status=500, count=3)

    with pytest.raises(TransientProviderError):
        await adapter(http_client, sendgrid.base_url).send(email())

    assert len(sendgrid.received) == 1


async def test_rate_limit_is_transient_until_the_reset_time(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.fail_next(status=429, retry_after=30)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(email())

    # X-RateLimit-Reset is whole epoch seconds, rounded up by the fake.
    assert raised.value.retry_after is not None
    assert 29 <= raised.value.retry_after <= 31


async def test_retry_after_header_sets_the_transient_delay(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.fail_next(status=503, retry_after=12)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(email())

    assert raised.value.retry_after == 12.0


async def test_unanswered_request_is_unknown_outcome(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.delay_seconds = 10

    with pytest.raises(UnknownOutcomeError):
        await adapter(http_client, sendgrid.base_url, timeout_seconds=0.3).send(email())

    assert len(sendgrid.received) == 1


async def test_refused_connection_is_transient(http_client: aiohttp.ClientSession) -> None:
    # Bound but not listening: the port stays ours and every connect is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        with pytest.raises(TransientProviderError):
            await adapter(http_client, f"http://127.0.0.1:{port}").send(email())


async def test_content_starting_like_an_api_key_is_permanent_without_a_request(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    leaked = replace(
        email(), email=RenderedEmail(subject="Hi", text="SG.abc123.def456 is my key", html="x")
    )

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).send(leaked)

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert sendgrid.received == []


async def test_delete_bounce_removes_the_address_from_the_bounce_list(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.add_bounce("parent@example.org")
    sendgrid.add_bounce("other@example.org")

    await adapter(http_client, sendgrid.base_url).delete_bounce("parent@example.org")

    [request] = sendgrid.received
    assert request.method == "DELETE"
    assert request.path == "/v3/suppression/bounces/parent@example.org"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.content == b""
    assert sendgrid.bounces == {"other@example.org"}


async def test_delete_bounce_quotes_the_address_in_the_path(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    # "+", "/", "?", "#" and "%" are all allowed in a local part.
    address = "o'brien+kids/2?#%@example.org"
    sendgrid.add_bounce(address)

    await adapter(http_client, sendgrid.base_url).delete_bounce(address)

    [request] = sendgrid.received
    assert request.path == "/v3/suppression/bounces/o%27brien%2Bkids%2F2%3F%23%25@example.org"
    assert sendgrid.bounces == set()


async def test_delete_bounce_of_an_unlisted_address_is_success(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    await adapter(http_client, sendgrid.base_url).delete_bounce("never-bounced@example.org")

    [request] = sendgrid.received
    assert request.method == "DELETE"
    # What the adapter was answered, as SendGrid answers it:
    async with http_client.delete(
        f"{sendgrid.base_url}{request.path}", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as again:
        assert again.status == 404
        assert "not on the bounce list" in (await again.json())["errors"][0]["message"]


async def test_delete_bounce_server_error_is_transient(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.add_bounce("parent@example.org")
    sendgrid.fail_next(status=500)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).delete_bounce("parent@example.org")

    assert raised.value.code == "500"
    assert sendgrid.bounces == {"parent@example.org"}


async def test_delete_bounce_rate_limit_is_transient_until_the_reset_time(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.fail_next(status=429, retry_after=30)

    with pytest.raises(TransientProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).delete_bounce("parent@example.org")

    assert raised.value.retry_after is not None
    assert 29 <= raised.value.retry_after <= 31


async def test_delete_bounce_with_a_wrong_key_is_permanent_provider_error(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.add_bounce("parent@example.org")

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url, api_key="SG.wrong.key").delete_bounce(
            "parent@example.org"
        )

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "401"
    assert sendgrid.bounces == {"parent@example.org"}


async def test_delete_bounce_forbidden_is_permanent_provider_error(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    # An API key without the suppressions scope.
    sendgrid.fail_next(status=403)

    with pytest.raises(PermanentProviderError) as raised:
        await adapter(http_client, sendgrid.base_url).delete_bounce("parent@example.org")

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "403"


async def test_delete_bounce_unanswered_is_unknown_outcome(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.delay_seconds = 10

    with pytest.raises(UnknownOutcomeError):
        await adapter(http_client, sendgrid.base_url, timeout_seconds=0.3).delete_bounce(
            "parent@example.org"
        )


async def test_delete_bounce_refused_connection_is_transient(
    http_client: aiohttp.ClientSession,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        with pytest.raises(TransientProviderError):
            await adapter(http_client, f"http://127.0.0.1:{port}").delete_bounce("a@example.org")


@pytest.mark.parametrize("email", ["", "   "])
async def test_delete_bounce_without_an_address_sends_nothing(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession, email: str
) -> None:
    # DELETE /v3/suppression/bounces is the bulk delete; it must never be reached.
    with pytest.raises(ValueError, match="email address is required"):
        await adapter(http_client, sendgrid.base_url).delete_bounce(email)

    assert sendgrid.received == []


async def test_mail_to_a_bounced_address_is_still_accepted(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    # SendGrid accepts it with 202 and drops it later with a "Bounced Address" event.
    sendgrid.add_bounce("parent@example.org")

    receipt = await adapter(http_client, sendgrid.base_url).send(email())

    [accepted] = sendgrid.accepted
    assert receipt.provider_message_id == accepted.message_id
    assert accepted.bounced == ("parent@example.org",)


async def test_mail_after_delete_bounce_is_no_longer_marked_bounced(
    sendgrid: FakeSendGrid, http_client: aiohttp.ClientSession
) -> None:
    sendgrid.add_bounce("parent@example.org")
    sender = adapter(http_client, sendgrid.base_url)

    await sender.delete_bounce("parent@example.org")
    await sender.send(email())

    [accepted] = sendgrid.accepted
    assert accepted.bounced == ()
