# Everything a fresh machine needs: `make serve` runs the service, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test lint postgres-server browser screenshots bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
# Test-only NAS-Bench-101 reference (tests/search_spaces/test_nb101.py); --no-deps: its wheel declares none.
	$(PY) -m pip install -q --no-deps nasbench_pytorch==1.3.1
# Test-only NATS-Bench reference (tests/search_spaces/test_nats_sss.py); --no-deps: its metadata pins
# numpy<=1.19.5, which would break our numpy; it imports and builds its networks with ours.
	$(PY) -m pip install -q --no-deps xautodl==1.0.0
	touch $(STAMP)

setup: $(STAMP)

# PostgreSQL binaries for the tests' throwaway server on 127.0.0.1 (Debian packages when missing).
postgres-server:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then :; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; \
	fi

# Headless Chromium and its WebDriver for the dashboard's browser tests and screenshots (Debian packages when
# missing; the tests drive them through Selenium with these paths, so nothing is downloaded at test time).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

serve: setup
	$(VENV)/bin/nasscore serve --host $(HOST) --port $(PORT)

# ruff (lint + format check), then mypy: strict on scorers/ and search_spaces/, checked on app/ (see pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict scorers search_spaces
	$(VENV)/bin/mypy app

test: setup postgres-server browser
	$(PY) -m pytest -q

# A PNG of each dashboard page in screenshots/ (not committed), from a throwaway server that scores a sample.
screenshots: setup browser
	$(PY) -m app.web.screenshots --out screenshots

bench: setup
	$(PY) bench/score_speed.py

clean:
	rm -rf $(VENV) .nasscore .pytest_cache .mypy_cache .ruff_cache
