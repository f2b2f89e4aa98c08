# AI-ETL: `make run` starts everything on embedded defaults; `make test` runs every test.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test bench bench-smoke lint format services clean

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

test: install services  ## Install, start services, run all tests
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(VENV)/.bench-installed services  ## Benchmarks of every service, with peers (AIETL_BENCH_SCALE=0.1: a quick look)
	$(BIN)/python -m bench

bench-smoke: install services  ## Every suite at tiny scale, peers skipped (what `make test` runs in tests/bench)
	AIETL_BENCH_SCALE=smoke $(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .aietl .pytest_cache .ruff_cache
