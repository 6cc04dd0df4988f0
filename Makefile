# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: run test lint format bench install migrate bootstrap clean

$(PY):
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when requirements.txt changes, so a second `make run` starts in seconds.
$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

bootstrap: migrate
	$(PY) manage.py bootstrap

run: bootstrap
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint
	$(PY) -m pytest

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var artifacts staticfiles .pytest_cache .ruff_cache
