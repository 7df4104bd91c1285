"""The fault suite's summary: one row per scenario, printed at the end of the session and
written to tests/artifacts/faults-summary.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import FaultSummary

SUMMARY_PATH = Path(__file__).resolve().parents[1] / "artifacts" / "faults-summary.md"

_SUMMARY = pytest.StashKey[FaultSummary]()


@pytest.fixture
def fault_summary(request: pytest.FixtureRequest) -> FaultSummary:
    """The session's summary, for a scenario to record its verdict in (before asserting)."""
    return request.config.stash.setdefault(_SUMMARY, FaultSummary())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(_SUMMARY, None)
    if summary is None or not summary.rows:
        return
    table = summary.markdown()
    terminalreporter.write_sep("=", "fault injection summary")
    terminalreporter.write_line(table)
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(f"# Fault injection summary\n\n{table}\n")
    terminalreporter.write_line(f"(also in {SUMMARY_PATH})")
