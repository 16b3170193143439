# Two commands on a fresh machine (Python 3.11+, make, a C compiler): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# pytest-xdist workers: the suite is sized for 2 cores.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck check bench-generate clean

$(BIN)/fulfil: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "fulfil needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/fulfil
	$(BIN)/fulfil demo

test: $(BIN)/fulfil
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(BIN)/fulfil
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/fulfil
	$(BIN)/mypy

check: lint typecheck test

# 12 million orders into the configured DATABASE_URL (PostgreSQL); see the README.
bench-generate: $(BIN)/fulfil
	$(BIN)/fulfil migrate
	$(BIN)/fulfil bench generate --orders 12000000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
