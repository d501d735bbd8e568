# Everything installs into .venv from requirements.lock, the exact set CI last passed with;
# a second `make test` does not reinstall. Installs are compiled to bytecode: where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) every process would
# otherwise compile torch again as it imports it (6 s, against 3 s from bytecode).
# `make lock` re-resolves the lock from pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: setup reinstall test bench lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	bash .ci/ffmpeg-libs
	touch $(STAMP)

# Install the lock again over a drifted .venv (the test suite's first check says when).
reinstall:
	rm -f $(STAMP)
	$(MAKE) setup

# Resolve pyproject.toml's ranges (all extras that `make setup` installs) afresh into the lock.
# Run it on purpose, then `make test`, and commit requirements.lock with what it changed.
lock:
	test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(UV) pip compile pyproject.toml --extra test --universal --python-version 3.11 \
		--no-header --annotation-style line -o requirements.lock

# A test file runs whole on one worker, one worker per core (tests/conftest.py starts the
# longest files first).
test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: setup
	$(BIN)/prep bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) bench-results .pytest_cache .ruff_cache
