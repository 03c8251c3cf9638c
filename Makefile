# Two commands for a fresh machine: `make run` (the daemon on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
# The CPU wheel of torch lies on this disk; install it before anything can pull a CUDA build.
TORCH := torch==2.13.0

.PHONY: install run test lint protos bench clean

# The daemon alone, which is all `make run` needs: no Ray (about 1.2 GB), which it runs without.
$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ./client -e .
	touch $(STAMP)

# Everything else: the tools, and Ray so that its tests run rather than skip.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/swarmlearn serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

protos: install
	$(BIN)/python scripts/gen_protos.py

bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/online.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .grimp_cache .import_linter_cache
