"""The transport and Retry-After rules every provider adapter shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from notifier.adapters.provider_http import retry_after_seconds, transport_error
from notifier.ports import TransientProviderError, UnknownOutcomeError


class _RefusedByProxy(httpx.ConnectError):
    pass


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        pytest.param(httpx.ConnectError("refused"), TransientProviderError, id="connect"),
        pytest.param(httpx.PoolTimeout("pool"), TransientProviderError, id="pool-timeout"),
        pytest.param(_RefusedByProxy("refused"), TransientProviderError, id="subclass"),
        pytest.param(httpx.ReadTimeout("read"), UnknownOutcomeError, id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("eof"), UnknownOutcomeError, id="disconnect"),
        pytest.param(httpx.ProxyError("proxy"), UnknownOutcomeError, id="not-listed"),
    ],
)
def test_transport_error_is_transient_only_when_the_request_never_left(
    error: httpx.TransportError, outcome: type[Exception]
) -> None:
    raised = transport_error("twilio", error)

    assert type(raised) is outcome
    assert raised.provider == "twilio"
    assert raised.detail == f"{type(error).__name__}: {error}"


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
