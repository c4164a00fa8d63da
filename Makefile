# Commands for a fresh machine (see README.md):
#   make demo   set up .venv, run the digits study on the CPU and write its report
#   make test   set up .venv if needed and run the whole test suite
#   make test-fast  the tests that neither train, start processes nor need PostgreSQL
#                   (-m "not slow and not postgres"): 25 s on 2 quiet cores, no services to start
# Re-running any of them is quick: .venv is rebuilt only when pyproject.toml changes.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint setup services versions clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ablate run studies/digits_quick.py
	$(BIN)/ablate report digits_quick

# PostgreSQL up and Chromium present (started or installed where possible, else one line saying
# what to install); .ci/run runs this same target.
services:
	tools/test-services

# Two test processes on one thread each keep both cores busy without oversubscribing them.
test: $(STAMP) services
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --durations=15

# The inner loop: no training, no new processes, no PostgreSQL, so no `services` first.
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 -m "not slow and not postgres"

# The versions the suite passed with, next to the ranges in pyproject.toml.
versions: $(STAMP)
	$(BIN)/python tools/tested_versions.py > docs/tested-versions.md

lint: $(STAMP)
	$(BIN)/ruff check ablate tests bench studies
	$(BIN)/mypy ablate
