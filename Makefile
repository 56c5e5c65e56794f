# zoosim: set-up and everyday commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run reproduce test lint docs bench clean examples

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: setup  ## the main job: reproduce the paper's claims, quick version (minutes)
	$(BIN)/zoosim reproduce --quick -o out/reproduce

reproduce: setup  ## the full reproduction (see README for its time)
	$(BIN)/zoosim reproduce -o out/reproduce-full

test: setup  ## the test suite
	$(BIN)/pytest

examples: setup  ## the README's quickstart commands, from a copy of the repository
	.ci/readme-examples

lint: setup  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy sim workloads defense zoo_profiles attacks experiments serve

docs: setup  ## the docs site (site/, strict) and the guides' examples as doctests
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site
	PYTHONPATH=$(CURDIR) $(BIN)/pytest -q --doctest-glob='*.md' docs/guides

bench: setup  ## engine speed against bare SimPy (docs/results/performance.md)
	$(BIN)/python benchmarks/engine.py --peak 1000000

clean:
	rm -rf $(VENV) out site .pytest_cache .mypy_cache .ruff_cache
