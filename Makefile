# zoosim: set-up and everyday commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: setup  ## the main job: simulate the quickstart scenario
	$(BIN)/zoosim simulate examples/poisson.yaml -o out/poisson

test: setup  ## the test suite
	$(BIN)/pytest

lint: setup  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy sim workloads defense zoo_profiles attacks experiments

bench: setup  ## engine speed against bare SimPy (see README, "Performance")
	$(BIN)/python benchmarks/engine.py --peak 1000000

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
