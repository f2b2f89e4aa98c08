# AI-ETL: `make run` starts everything on embedded defaults; `make test` runs every test.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test test-pure bench bench-smoke lint typecheck format services kafka clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash deploy/local/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[bench]"
	touch $@

run: install  ## Install, then broker + migrations + five workers + gateway on http://127.0.0.1:8000
	$(BIN)/aietl up

services:  ## Start PostgreSQL and Redis when they are not running (installs them when missing)
	bash deploy/local/start-services.sh

kafka:  ## Resolve Apache Kafka 4 with Maven into .aietl/kafka: the tests start their clusters from it
	bash deploy/local/kafka.sh fetch

# The whole suite on tansu (tests that need Apache Kafka itself start a three-broker cluster), then
# the bus, foundation, interop and poison suites again with Apache Kafka as the session's broker.
test: install services kafka  ## Install, start services, run all tests
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest --durations=15
	AIETL_TEST_BROKER=kafka $(BIN)/pytest tests/foundation tests/interop tests/reliability/test_poison.py

test-pure: install  ## The pure domain tests only (no services, seconds)
	$(BIN)/pytest -m pure -q

bench: $(VENV)/.bench-installed services kafka  ## Benchmarks of every service, with peers (AIETL_BENCH_SCALE=0.1: a quick look)
	$(BIN)/python -m bench

bench-smoke: install services  ## Every suite at tiny scale, peers skipped (what `make test` runs in tests/bench)
	AIETL_BENCH_SCALE=smoke $(BIN)/python -m bench

lint: install  ## ruff (lint and format check), then mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: install  ## mypy on services, shared, bench and tests ([tool.mypy] in pyproject.toml; cache in .aietl/mypy-cache)
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .aietl .pytest_cache .ruff_cache
