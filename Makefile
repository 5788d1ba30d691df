# README's two commands: `make demo` and `make test`. Both create .venv when it
# is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck lint stress bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/statetype demo

# The whole suite: unit and database tests on SQLite, PostgreSQL and MariaDB,
# typing checks, docs examples. pytest-xdist spreads it over the cores.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/pyright
	$(BIN)/python -m pytest -n auto -p no:cacheprovider

typecheck: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/pyright

stress: $(STAMP)
	STATETYPE_STRESS=1 $(BIN)/python -m pytest -p no:cacheprovider -m slow tests

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) site .mypy_cache .pytest_cache
