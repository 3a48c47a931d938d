# Yilian: `make demo` to try it, `make test` to test it. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
PORT ?= 8000
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: install demo test test-sqlite test-postgres check fmt bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --extra spark --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/yilian demo --port $(PORT)

test: install
	$(BIN)/pytest
	@if [ -n "$$YILIAN_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$YILIAN_TEST_DATABASE_URL)"; \
		YILIAN_DATABASE_URL="$$YILIAN_TEST_DATABASE_URL" YILIAN_SECRET_KEY="$${YILIAN_SECRET_KEY:-test-only-not-a-secret}" \
			$(BIN)/pytest; \
	fi

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy yilian benchmarks conftest.py
	$(BIN)/python manage.py makemigrations --check --dry-run

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .tools var/test.sqlite3 .pytest_cache .mypy_cache .ruff_cache
