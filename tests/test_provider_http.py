"""The transport and Retry-After rules every provider adapter shares."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from notifier.adapters.provider_http import (
    ProviderHttp,
    create_session,
    retry_after_seconds,
    transport_error,
)
from notifier.ports import TransientProviderError, UnknownOutcomeError


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        pytest.param(
            aiohttp.ConnectionTimeoutError("connect"), TransientProviderError, id="connect-timeout"
        ),
        pytest.param(aiohttp.SocketTimeoutError("read"), UnknownOutcomeError, id="read-timeout"),
        pytest.param(aiohttp.ServerDisconnectedError(), UnknownOutcomeError, id="disconnect"),
        pytest.param(aiohttp.ClientPayloadError("cut"), UnknownOutcomeError, id="cut-short"),
        pytest.param(TimeoutError(), UnknownOutcomeError, id="whole-exchange-timeout"),
        pytest.param(
            aiohttp.ClientOSError(32, "broken pipe"), UnknownOutcomeError, id="not-listed"
        ),
    ],
)
def test_transport_error_is_transient_only_when_the_request_never_left(
    error: BaseException, outcome: type[Exception]
) -> None:
    raised = transport_error("twilio", error)

    assert type(raised) is outcome
    assert raised.provider == "twilio"
    assert raised.detail == f"{type(error).__name__}: {error}"


async def test_a_refused_connection_is_transient() -> None:
    # Bound but not listening: the port stays ours and every connect is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        async with create_session(max_connections=1) as session:
            http = ProviderHttp(session, "twilio", timeout_seconds=2.0)

            with pytest.raises(TransientProviderError, match="ClientConnectorError"):
                await http.request("POST", f"http://127.0.0.1:{port}/", body=b"x")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("7", 7.0, id="delta-seconds"),
        pytest.param("-3", 0.0, id="negative"),
        pytest.param("soon", None, id="unreadable"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, id="date-in-the-past"),
    ],
)
def test_retry_after_is_seconds_to_wait_or_none_when_unreadable(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_reads_an_http_date_as_seconds_from_now() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    seconds = retry_after_seconds(when)

    assert seconds is not None
    assert 58 <= seconds <= 60
