# Everything a fresh machine needs: `make serve` runs the service, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test lint postgres-server bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# PostgreSQL binaries for the tests' throwaway server on 127.0.0.1 (Debian packages when missing).
postgres-server:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then :; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; \
	fi

serve: setup
	$(VENV)/bin/nasscore serve --host $(HOST) --port $(PORT)

# ruff (lint + format check), then mypy: strict on scorers/ and search_spaces/, checked on app/ (see pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict scorers search_spaces
	$(VENV)/bin/mypy app

test: setup postgres-server
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/score_speed.py

clean:
	rm -rf $(VENV) .nasscore .pytest_cache .mypy_cache .ruff_cache
