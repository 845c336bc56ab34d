# calsync: `make run` serves the demo on http://127.0.0.1:8000 (embedded SQLite; `make run PORT=8080`
# for another port); `make test` runs everything.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
JS_STAMP := tests/js/node_modules/.installed
OIDC_STAMP := tests/peers/oidc/node_modules/.installed

.PHONY: run test lint typecheck pytest install clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the official-client test will be skipped"; fi

$(OIDC_STAMP): tests/peers/oidc/package.json tests/peers/oidc/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/peers/oidc && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the OAuth tests will be skipped"; fi

# `make run` installs only what serving needs (calsync and the demo's Radicale): fast on a fresh machine.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(RUN_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/calsync serve --demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/calsync

pytest: $(STAMP) $(JS_STAMP) $(OIDC_STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tests/js/node_modules tests/peers/oidc/node_modules .calsync
