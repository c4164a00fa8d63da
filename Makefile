# Two commands for a fresh machine (see README.md):
#   make demo   set up .venv, run the digits study on the CPU and write its report
#   make test   set up .venv if needed and run the whole test suite
# Re-running either is quick: .venv is rebuilt only when pyproject.toml changes.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ablate run studies/digits_quick.py
	$(BIN)/ablate report --study digits_quick

# Two test processes on one thread each keep both cores busy without oversubscribing them.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --durations=15

lint: $(STAMP)
	$(BIN)/ruff check ablate tests bench studies
	$(BIN)/mypy ablate
