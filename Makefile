# Two commands a new user needs: `make demo` and `make test`. Both create the environment if missing.
#
# Every supported Airflow (constraints/releases.tsv) has its own venv and pins:
#   make test AIRFLOW_VERSION=3.0.6      # .venv-airflow-3.0.6, installed with constraints/airflow-3.0.6.txt
#   make demo AIRFLOW_VERSION=2.11.2
# The default is the newest (.venv). `make matrix` runs the CI matrix (.ci/matrix).
PYTHON ?= python3
DEFAULT_AIRFLOW := 3.3.2
AIRFLOW_VERSION ?= $(DEFAULT_AIRFLOW)
ifeq ($(AIRFLOW_VERSION),$(DEFAULT_AIRFLOW))
VENV ?= .venv
else
VENV ?= .venv-airflow-$(AIRFLOW_VERSION)
endif
CONSTRAINTS := constraints/airflow-$(AIRFLOW_VERSION).txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
export AIRFLOW_VERSION

.PHONY: demo demo-lake test test-fast lint bench bench-quick clean env lock browser dist e2e e2e-killed e2e-celery services docs matrix

env: $(STAMP)

# constraints/airflow-<version>.txt pins the versions the suite last passed with (`make lock` remakes it).
# --compile-bytecode: every module is byte-compiled once, here. Without it a Python started with
# PYTHONDONTWRITEBYTECODE=1 (as CI shells may be) compiles Airflow from source in every process: ~2.3 s per
# `airflow` subprocess and test child, and a lazy import (numpy) inside a measured transfer.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e '.[test]' -c $(CONSTRAINTS)
	@touch $@

$(CONSTRAINTS):
	@echo "no $(CONSTRAINTS): Airflow $(AIRFLOW_VERSION) is not one of the supported versions (constraints/releases.tsv)"; exit 1

lock:
	PYTHON=$(PYTHON) constraints/lock.sh $(AIRFLOW_VERSION)

demo: $(STAMP)
	$(PY) -m cloudmax_provider.testing.demo
	$(PY) -m cloudmax_provider.testing.demo --dag cloudmax_lake_tables --workdir .demo-lake --if-supported

# The lake tables (example_dags/cloudmax_lake_tables.py): opens and the read summary into Iceberg tables of an
# embedded SQL catalog under .demo/lake; prints each table's location and row count (Airflow 3.1+: SQLAlchemy 2)
demo-lake: $(STAMP)
	$(PY) -m cloudmax_provider.testing.demo --dag cloudmax_lake_tables --workdir .demo-lake

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The CI matrix: every supported Airflow, each with the part of the suite .ci/matrix gives it.
matrix:
	.ci/matrix

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# The connection form in headless Chromium against a real api-server (needs: apt-get install chromium chromium-driver);
# screenshots in .ci-artifacts/browser/
browser: $(STAMP)
	$(PY) -m pytest -m browser -p no:cacheprovider tests/integration/test_browser.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check cloudmax_provider tests example_dags bench setup.py
	$(VENV)/bin/mypy

# The docs site (docs/, Sphinx + MyST): HTML into docs/_build/html, warnings as errors, then every code block
# of the pages and docstrings run by the doctest builder. tests/test_docs_site.py checks the built site's links in
# Chromium (run by make docs after building; `-m docs`).
DOCS_STAMP := $(VENV)/.docs-stamp
SPHINX := $(PY) -m sphinx -W --keep-going -q -E -j 1
$(DOCS_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) -q -e '.[test,docs]' -c $(CONSTRAINTS)
	@touch $@

docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(SPHINX) -b html docs docs/_build/html
	$(SPHINX) -b doctest docs docs/_build/doctest
	$(PY) -m pytest -m docs -p no:cacheprovider -q tests/test_docs_site.py $(PYTEST_ARGS)

# Benchmarks (bench/README.md): the `bench` extra adds matplotlib (the plots), py-spy (flame graphs) and DuckDB (the
# JSON Lines peer). bench/curves.py runs up to 4,000 MiB in `make bench` (it skips a point, saying why, when the
# disk or memory is short) and up to 100 MiB in `make bench-quick`.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e '.[test,bench]' -c $(CONSTRAINTS)
	@touch $@

bench: $(BENCH_STAMP)
	$(PY) bench/run.py
	$(PY) bench/parquet.py
	$(PY) bench/backfill.py
	$(PY) bench/iceberg.py
	$(PY) bench/curves.py

bench-quick: $(BENCH_STAMP)
	$(PY) bench/run.py --quick
	$(PY) bench/backfill.py --quick
	$(PY) bench/iceberg.py --quick
	$(PY) bench/curves.py --max-mb 100

# The wheel and sdist users install (dist/), checked by twine: only the build tools, in their own venv
# (.venv-build), not Airflow or the test environment; the build backend is pyproject.toml's.
BUILD_VENV := .venv-build
dist:
	@test -x $(BUILD_VENV)/bin/python || $(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install -q --upgrade build twine uv
	rm -rf dist build
	$(BUILD_VENV)/bin/python -m build --installer uv --outdir dist .
	$(BUILD_VENV)/bin/twine check --strict dist/*

# Deployment tests (tests/e2e/, deselected by `make test`): the built wheel in a separate venv (.e2e/venv),
# a real Airflow as separate processes on loopback ports. Logs of every component and task: .ci-artifacts/e2e/
E2E_PYTEST = $(PY) -m pytest -p no:cacheprovider -ra tests/e2e $(PYTEST_ARGS)

e2e: $(STAMP)
	$(E2E_PYTEST) -m e2e

e2e-killed: $(STAMP)
	$(E2E_PYTEST) -m e2e_killed

# CeleryExecutor: PostgreSQL and Redis from Debian's packages (installed here when missing and we are root).
e2e-celery: $(STAMP) services
	$(E2E_PYTEST) -m e2e_celery

services:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null); \
	  else echo "PostgreSQL and redis-server are needed: apt-get install postgresql redis-server"; exit 1; fi; \
	fi

clean:
	rm -rf .venv .venv-airflow-* .venv-build docs/_build docs/_generated .demo .demo-lake .pytest_cache .mypy_cache .ruff_cache .e2e .ci-artifacts dist build
