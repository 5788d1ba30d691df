# README's two commands: `make demo` and `make test`. Both create .venv when it
# is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-sa20 test-matrix typecheck lint stress bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# Graphviz's dot draws `statetype graph --format svg`; its tests skip without it.
	@command -v dot >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(apt-get install -y -q graphviz >/dev/null 2>&1 || sudo -n apt-get install -y -q graphviz >/dev/null 2>&1) || \
		echo "note: Graphviz (dot) is not installed; the svg diagram tests will be skipped")
	@# Debian's Chromium (and its driver) for the admin's browser test, driven by Playwright without a browser download.
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || sudo -n apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) || \
		echo "note: Chromium is not installed; the admin browser test will be skipped (required under CI=true)")
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/statetype demo

# The whole suite: unit and database tests on SQLite, PostgreSQL and MariaDB,
# typing checks, docs examples. pytest-xdist spreads it over the cores.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/pyright
	$(BIN)/python -m pytest -n auto -p no:cacheprovider

# SQLAlchemy 2.0 and 2.1: .venv resolves the newest release the project allows
# (2.1.x); .venv-sa20 pins the newest 2.0.x. Both run the suite (test-sa20
# also mypy); SA_BACKENDS narrows the databases (CI runs test-sa20 on sqlite).
SA20 := .venv-sa20
SA_BACKENDS ?= sqlite,postgresql,mariadb

$(SA20)/.installed: pyproject.toml
	test -x $(SA20)/bin/python || $(PYTHON) -m venv $(SA20)
	$(SA20)/bin/python -m pip install -q --upgrade pip
	$(SA20)/bin/python -m pip install -q -e '.[dev]' 'SQLAlchemy~=2.0.0'
	touch $@

test-sa20: $(SA20)/.installed
	$(SA20)/bin/python -c "import sqlalchemy; print('SQLAlchemy', sqlalchemy.__version__)"
	$(SA20)/bin/python -m mypy
	STATETYPE_BACKENDS=$(SA_BACKENDS) $(SA20)/bin/python -m pytest -n auto -p no:cacheprovider

test-matrix: test-sa20 $(STAMP)
	$(BIN)/python -c "import sqlalchemy; print('SQLAlchemy', sqlalchemy.__version__)"
	STATETYPE_BACKENDS=$(SA_BACKENDS) $(BIN)/python -m pytest -n auto -p no:cacheprovider

typecheck: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/pyright

# Long concurrency runs (not in `make test`, which runs a short variant of each):
# the slow pytest variants, then benchmarks/stress.py's figures on PostgreSQL and MariaDB.
stress: $(STAMP)
	STATETYPE_STRESS=1 $(BIN)/python -m pytest -p no:cacheprovider -m slow tests
	$(BIN)/python benchmarks/stress.py $(STRESS_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) $(SA20) site .mypy_cache .pytest_cache
