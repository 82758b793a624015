# Two commands a new user needs: `make demo` and `make test`. Both create the environment if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint bench bench-quick clean env lock browser

env: $(STAMP)

# constraints.txt pins the versions the suite last passed with (`make lock` refreshes it to the newest).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) -q -e '.[test]' -c constraints.txt
	@touch $@

lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) -q --upgrade -e '.[test]'
	$(VENV)/bin/uv pip freeze --python $(PY) | grep -v -e '^-e ' -e '^airflow-provider-cloudmax' > constraints.txt

demo: $(STAMP)
	$(PY) -m cloudmax_provider.testing.demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# The connection form in headless Chromium against a real api-server (needs: apt-get install chromium chromium-driver);
# screenshots in .ci-artifacts/browser/
browser: $(STAMP)
	$(PY) -m pytest -m browser -p no:cacheprovider tests/test_browser.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check cloudmax_provider tests example_dags bench
	$(VENV)/bin/mypy

# Benchmarks (bench/README.md): the `bench` extra adds matplotlib (the RSS plot) and py-spy (flame graphs).
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) -q -e '.[test,bench]' -c constraints.txt
	@touch $@

bench: $(BENCH_STAMP)
	$(PY) bench/run.py
	@if [ -f bench/bench_parquet.py ]; then $(PY) bench/bench_parquet.py; fi

bench-quick: $(BENCH_STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
