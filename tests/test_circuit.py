"""The circuit breaker's state machine, with time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.domain.circuit import CircuitBreaker, CircuitState

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
COOL_DOWN = timedelta(seconds=30)
WINDOW = timedelta(seconds=10)


def breaker() -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cool_down=COOL_DOWN, window=WINDOW)


def test_it_opens_after_the_threshold_of_failures_in_a_row() -> None:
    circuit = breaker()
    assert [circuit.failed(T0) for _ in range(3)] == [False, False, True]
    assert circuit.state is CircuitState.OPEN
    assert not circuit.allows(T0 + COOL_DOWN - timedelta(seconds=1))


def test_a_provider_answering_most_calls_stays_closed_when_its_failures_come_in_a_burst() -> None:
    # Dozens of sends in flight: the quick failures (500s, 429s) are answered first.
    circuit = breaker()
    for _ in range(8):
        circuit.succeeded(T0)
    assert [circuit.failed(T0) for _ in range(6)] == [False] * 6
    assert circuit.state is CircuitState.CLOSED


def test_it_opens_when_half_the_calls_of_the_window_fail() -> None:
    circuit = breaker()
    for _ in range(3):
        circuit.succeeded(T0)
    opened = [circuit.failed(T0 + timedelta(seconds=1)) for _ in range(3)]
    assert opened == [False, False, True]


def test_failures_older_than_the_window_are_forgotten() -> None:
    circuit = breaker()
    circuit.failed(T0)
    circuit.failed(T0)
    assert circuit.failed(T0 + WINDOW + timedelta(seconds=1)) is False
    assert circuit.state is CircuitState.CLOSED


def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes_it() -> None:
    circuit = breaker()
    for _ in range(3):
        circuit.failed(T0)
    later = T0 + COOL_DOWN
    assert circuit.allows(later) is True
    assert circuit.state is CircuitState.HALF_OPEN
    assert circuit.allows(later) is False, "only one probe at a time"
    assert circuit.succeeded(later) is True
    assert circuit.state is CircuitState.CLOSED
    assert circuit.allows(later)


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    circuit = breaker()
    for _ in range(3):
        circuit.failed(T0)
    probe_at = T0 + COOL_DOWN
    assert circuit.allows(probe_at)
    assert circuit.failed(probe_at) is True
    assert circuit.state is CircuitState.OPEN
    assert not circuit.allows(probe_at + COOL_DOWN - timedelta(seconds=1))
    assert circuit.allows(probe_at + COOL_DOWN)


def test_a_probe_that_never_reports_back_does_not_hold_it_half_open_forever() -> None:
    circuit = breaker()
    for _ in range(3):
        circuit.failed(T0)
    assert circuit.allows(T0 + COOL_DOWN)  # this probe's task is cancelled: no report
    assert not circuit.allows(T0 + COOL_DOWN + timedelta(seconds=1))
    assert circuit.allows(T0 + 2 * COOL_DOWN), "another probe after a further cool-down"
