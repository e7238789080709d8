# Two commands: `make demo` runs the main job, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-matrix lint typecheck pytest bench bench-quick coverage clean notebook

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make demo` installs the package as a user would (a wheel: no editable-install notice);
# `make test` installs it editable with the dev tools, which serves the demo too.
$(VENV)/.installed: pyproject.toml $(shell find cf_transcribe_pandas -type f -not -name '*.pyc') | $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	touch $@

# The dev tools are installed with uv: pip's resolver backtracks for many minutes over
# boto3 releases (moto and s3fs's aiobotocore pin botocore differently); uv takes seconds.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/cf-transcribe demo

lint: $(STAMP)
	$(BIN)/ruff check cf_transcribe_pandas tests benchmarks tools noxfile.py
	$(BIN)/ruff format --check cf_transcribe_pandas tests benchmarks noxfile.py
	$(BIN)/python tools/check_layout.py cf_transcribe_pandas

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The support matrix (noxfile.py, CONTRIBUTING.md): Python 3.10 with every dependency at
# its declared minimum, Python 3.13 with the newest releases, the package without extras.
# A session whose interpreter the machine lacks is skipped, and nox says so. Two at a
# time: the suite mostly waits (on the emulator, subprocesses, Dask), so 2 cores suffice.
test-matrix: $(STAMP)
	$(BIN)/nox --no-color -j 2

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
	rm -rf $(VENV) .nox build *.egg-info .pytest_cache .mypy_cache .ruff_cache
