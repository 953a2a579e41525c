# The commands people run. `make run` and `make test` work on a fresh machine: they install
# what is missing (Python packages into .venv, Playwright's Python package included; Debian
# packages, chromium among them, the Kafka jars and axe-core under /var/cache/herald through
# `herald stack up`) and start the local stack.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HERALD := $(BIN)/herald
STAMP  := $(VENV)/.installed

.PHONY: run test install stack lint typecheck pytest bench clean-stack

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,faust]"
	@touch $(STAMP)

install: $(STAMP)

stack: install
	$(HERALD) stack up
	$(HERALD) migrate
	$(HERALD) topics create

# The main job: the whole pipeline locally, in the foreground (Ctrl-C stops it).
run: stack
	$(HERALD) run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: stack
	$(BIN)/python -m pytest --durations=25

# ruff, mypy and the whole suite against the local stack (started if needed).
test: lint typecheck pytest

bench: stack
	$(HERALD) bench burst

clean-stack: install
	$(HERALD) stack down
