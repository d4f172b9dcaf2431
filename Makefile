# The two commands: `make run` (the demo, served) and `make test` (lint and the whole suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate seed worker beat sandbox venv install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Local runs are development runs: DEBUG on unless the environment says otherwise.
run migrate seed worker beat sandbox: export DEBUG ?= 1
run: install
	$(BIN)/python manage.py migrate --noinput
	@pids=""; trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	if [ -z "$$STRIPE_SECRET_KEY" ]; then \
		echo "No STRIPE_SECRET_KEY: starting the local Stripe sandbox (payments/sandbox) on port $${STRIPE_SANDBOX_PORT:-12111}"; \
		$(BIN)/python manage.py stripe_sandbox & pids="$$pids $$!"; \
		for _ in $$(seq 1 50); do $(BIN)/python -c "import sys; from payments.sandbox.control import sandbox_reachable; sys.exit(0 if sandbox_reachable('http://127.0.0.1:$${STRIPE_SANDBOX_PORT:-12111}') else 1)" && break; sleep 0.2; done; \
	else \
		echo "STRIPE_SECRET_KEY is set: talking to Stripe; the sandbox stays off."; \
	fi; \
	$(BIN)/python manage.py seed_demo || exit 1; \
	if [ -n "$$CELERY_BROKER_URL" ]; then \
		echo "Starting a Celery worker and beat (broker: $$CELERY_BROKER_URL)"; \
		$(BIN)/celery -A crowdplatform worker --beat --loglevel=INFO --concurrency=2 & pids="$$pids $$!"; \
	else \
		echo "No CELERY_BROKER_URL: background tasks run in-process."; \
	fi; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

sandbox: install
	$(BIN)/python manage.py stripe_sandbox

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=tests.settings
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: install
	$(BIN)/python manage.py migrate

seed: install
	$(BIN)/python manage.py seed_demo

worker: install
	$(BIN)/celery -A crowdplatform worker --loglevel=INFO

beat: install
	$(BIN)/celery -A crowdplatform beat --loglevel=INFO

clean:
	rm -rf $(VENV) var db.sqlite3
