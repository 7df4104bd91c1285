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
	@echo "make lock      re-lock dependencies into constraints.txt after editing pyproject.toml"
	@echo "make bench     benchmark the service and its peer (bench/README.md, ~15 min); results in bench/results/"
	@echo "make image-check / deploy-check   lint and prove the Dockerfile / the Helm chart"

# Installed from the lock (constraints.txt): the versions CI and the image use.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt pip
	$(BIN)/pip install --quiet -c constraints.txt --build-constraint constraints.txt -e '.[dev]'
	touch $(STAMP)

# The benchmark (bench/README.md): the real service on the local broker, SQLite and
# PostgreSQL, one and two processes, with a py-spy profile, and the peer (Celery) beside it,
# with the fake providers answering at once and after 150 ms. Results in bench/results/.
.PHONY: bench bench-smoke bench-tools
bench: $(STAMP) services bench-tools
	bench/run --db both --replicas 2 --profile --provider-latency-ms 0 150

# Seconds-long phases: the benchmark still runs end to end (~2 min); fails only on a lost delivery.
bench-smoke: $(STAMP) services bench-tools
	bench/run --smoke --db both --replicas 2 --provider-latency-ms 0 150

# The bench's tools, never in notifier's virtualenv: py-spy and the peer's Celery and SDKs
# (bench/tools-requirements.txt), and Debian's redis-server, the peer's broker.
BENCH_TOOLS := .local/bench-tools
bench-tools: $(BENCH_TOOLS)/.installed
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "bench-tools: installing Debian's redis-server (the peer's broker)"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server </dev/null; }
$(BENCH_TOOLS)/.installed: bench/tools-requirements.txt
	test -x $(BENCH_TOOLS)/bin/python || $(PYTHON) -m venv $(BENCH_TOOLS)
	$(BENCH_TOOLS)/bin/pip install --quiet -r bench/tools-requirements.txt
	touch $@

# After changing dependencies in pyproject.toml: re-lock, and commit constraints.txt.
.PHONY: lock image-check deploy-check
lock:
	scripts/lock-dependencies
# The Dockerfile linted (hadolint) and its install steps proven in a fresh venv.
image-check:
	scripts/check-image
# The Helm chart (lint, schema, kubeconform), the alert rules (promtool) and the dashboard.
deploy-check: $(STAMP)
	scripts/check-deploy

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
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck layers

test: $(STAMP) services check
	NOTIFIER_TEST_POSTGRES_URL="$$(scripts/postgres-local url)" $(BIN)/pytest

docs: $(STAMP)
	$(BIN)/notifier docs --output docs

# Shipped catalogs, as Babel locale ids (the loader maps zh_Hans to zh-Hans); English is the
# source language (the message ids), so it has none. Adding a language: list it here, run
# `make catalogs`, translate its new .po file, and add it to tests/test_catalogs.py.
catalogs catalogs-check catalogs-compile: CATALOG_LANGUAGES := es vi zh_Hans zh_Hant ar ht pt ru so fr ko tl uk
catalogs catalogs-check catalogs-compile: CATALOG_DIR := src/notifier/locale
catalogs: $(STAMP)
	$(BIN)/pybabel extract --no-default-keywords -k gettext --add-comments=Translators: \
		--no-location --sort-output --no-wrap \
		--project=notifier --version="$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("notifier"))')" \
		--header-comment="# notifier's system wording; the message ids are the English text. Regenerate: make catalogs" \
		-o $(CATALOG_DIR)/notifier.pot src/notifier
	for lang in $(CATALOG_LANGUAGES); do \
		$(BIN)/pybabel update --init-missing --no-fuzzy-matching --no-wrap -D notifier -l $$lang \
			-i $(CATALOG_DIR)/notifier.pot -d $(CATALOG_DIR) || exit 1; \
	done

# Fails when the template is stale or a shipped catalog lacks a translation or a placeholder.
.PHONY: catalogs-check
catalogs-check: $(STAMP)
	$(BIN)/pytest -q tests/test_catalogs.py

# The service compiles the .po files in memory when it starts (nothing generated to drift);
# this compiles them with pybabel into .local/locale, e.g. for a gettext tool to inspect.
.PHONY: catalogs-compile
catalogs-compile: $(STAMP)
	mkdir -p .local/locale && cp -r $(CATALOG_DIR)/. .local/locale/
	$(BIN)/pybabel compile --statistics -D notifier -d .local/locale

clean:
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
