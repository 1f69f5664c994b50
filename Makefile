# The two commands: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test test-sqlite test-postgres install clean bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Start the server on the embedded defaults (SQLite, demo client) at http://127.0.0.1:5000
run: $(VENV)/.installed
	$(VENV)/bin/authz-server dev

## The whole suite on SQLite, and again on Postgres when TEST_DATABASE_URL is set.
test: $(VENV)/.installed
	env -u TEST_DATABASE_URL $(PY) -m pytest -q
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on Postgres ($$TEST_DATABASE_URL)"; \
		$(PY) -m pytest -q; \
	fi

test-sqlite: $(VENV)/.installed
	env -u TEST_DATABASE_URL $(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/token_endpoint.py

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
