# Two commands: `make demo` runs the main job, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench bench-quick coverage clean notebook

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make demo` installs the package as a user would (a wheel: no editable-install notice);
# `make test` installs it editable with the dev tools, which serves the demo too.
$(VENV)/.installed: pyproject.toml $(shell find cf_transcribe_pandas -type f -not -name '*.pyc') | $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/cf-transcribe demo

lint: $(STAMP)
	$(BIN)/ruff check cf_transcribe_pandas tests benchmarks tools
	$(BIN)/ruff format --check cf_transcribe_pandas tests benchmarks
	$(BIN)/python tools/check_layout.py cf_transcribe_pandas

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/compare.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/compare.py --quick

# Re-execute notebooks/quickstart.ipynb (emulator + local S3) and save its outputs.
notebook: $(STAMP)
	$(BIN)/python tools/run_notebook.py

coverage: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest -q
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
