"""Fault injection on the real broker, the real service process and the fake providers.

    NOTIFIER_TEST_POSTGRES_URL="$(scripts/postgres-local url)" .venv/bin/pytest tests/faults -q

harness.py states the guarantee every scenario checks; tests/fakes/fault_modes.py the fake
providers' 500s, 429s and hangs. The session ends with a table, one row per scenario, also
written to tests/artifacts/faults-summary.md. test_outages.py stops and starts the local broker and
PostgreSQL (scripts/kafka-local, scripts/postgres-local), so don't run it beside another
session that uses them.
"""
