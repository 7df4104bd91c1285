# notifier — `make demo` and `make test` are the two commands of the README's quick start.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed


.PHONY: help demo test check lint typecheck layers unit kafka kafka-stop postgres postgres-stop \
	services stop run catalogs docs clean

help:
	@echo "make demo      set everything up and run the demo (SQLite, local Kafka, sandbox providers)"
	@echo "make test      lint, type and layer checks, then the whole test suite"
	@echo "make run       run the service (consumer + HTTP) on the embedded defaults"
	@echo "make stop      stop the local Kafka broker and PostgreSQL server"
	@echo "make docs      regenerate docs/asyncapi.yaml and docs/openapi.json from the code"
	@echo "make catalogs  extract message ids and update the .po files (Babel)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

kafka:
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

postgres:
	scripts/postgres-local start

postgres-stop:
	scripts/postgres-local stop

services: kafka postgres

stop: kafka-stop postgres-stop

demo: $(STAMP) kafka
	$(BIN)/notifier demo

run: $(STAMP) kafka
	$(BIN)/notifier run

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck layers

test: $(STAMP) services check
	NOTIFIER_TEST_POSTGRES_URL="$$(scripts/postgres-local url)" $(BIN)/pytest

docs: $(STAMP)
	$(BIN)/notifier docs --output docs

catalogs: $(STAMP)
	$(BIN)/pybabel extract --no-location --sort-output -k gettext -o src/notifier/locale/notifier.pot src/notifier
	$(BIN)/pybabel update --no-fuzzy-matching -D notifier -i src/notifier/locale/notifier.pot -d src/notifier/locale

clean:
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
