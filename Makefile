# The two commands: `make run` and `make test`. Everything else is optional.
PORT ?= 8000
HOST ?= 127.0.0.1
# `uv` when on PATH, otherwise the copy pip installs (`python3 -m uv`).
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || echo "python3 -m uv")
PYTEST_WORKERS ?= 2
FUZZ_EXAMPLES ?= 100

.PHONY: help ensure-uv ensure-chromium sync run demo test lint format migrate migration bench fuzz clean

help:
	@echo "make run      set up and start the API on http://$(HOST):$(PORT) (embedded: SQLite, in-process jobs)"
	@echo "make test     set up and run the whole test suite"
	@echo "make lint     ruff (lint + format check) and mypy --strict"
	@echo "make migrate  upgrade the database to the newest schema"
	@echo "make demo     the whole product end to end on a throw-away database (var/demo), in under a minute"
	@echo "make fuzz     contract fuzzing of the OpenAPI document, $(FUZZ_EXAMPLES) examples per operation"
	@echo "make bench    run every benchmark, print one table of targets (bench/results/latest.json)"

ensure-uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

sync: ensure-uv
	$(UV) sync --frozen

.env:
	cp .env.example .env

run: sync .env
	$(UV) run outreach migrate
	$(UV) run outreach serve --host $(HOST) --port $(PORT)

demo: sync .env
	$(UV) run outreach demo

# The browser tests (tests/web) drive Debian's Chromium; as root it is installed when missing.
ensure-chromium:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: sync ensure-chromium
	$(UV) run pytest -n $(PYTEST_WORKERS) -q

# `make test` runs the same with a few examples per operation (tests/contract).
fuzz: sync
	OUTREACH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(UV) run pytest -n $(PYTEST_WORKERS) -q -m fuzz tests/contract

lint: sync
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench
	$(UV) run mypy

format: sync
	$(UV) run ruff check --fix src tests bench
	$(UV) run ruff format src tests bench

migrate: sync .env
	$(UV) run outreach migrate

migration: sync
	$(UV) run alembic revision --autogenerate -m "$(m)"

# Every benchmark runs (a missed target does not stop the others); one table at the end.
# PostgreSQL/Redis when OUTREACH_TEST_DATABASE_URL/OUTREACH_TEST_REDIS_URL are set.
# `make bench BENCH="credits_debit resume_parse"` runs some of them.
bench: sync
	$(UV) run python bench/run.py $(BENCH)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
