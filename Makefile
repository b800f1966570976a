# make run  - set everything up (virtualenv, packages, database, static files, first user)
#             and start the web server + a django-q2 worker cluster. Ctrl-C stops both.
# make test - set up the test packages and run the whole suite (what .ci/run calls).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The web server listens on this address only; BIND=0.0.0.0 serves every interface (put a proxy in front:
# docs/deployment.md).
BIND ?= 127.0.0.1
export PORT BIND

.PHONY: run test test-fast test-scaleout soak lint screenshots bench clean system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	$(BIN)/python -m videojobs.datadir
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_superuser
	@echo "videojobs: open http://localhost:$(PORT)/ (listening on $(BIND); Ctrl-C stops the web server and the worker)"
	@# Ctrl-C: honcho stops both processes and exits 130; that is the normal way out, not an error.
	trap : INT; $(BIN)/honcho start --procfile Procfile || [ $$? -eq 130 ]

# Debian's packages: chromium + chromium-driver for the browser tests, nginx for the slow-client test of
# deploy/nginx.conf, wrk for the polling benchmark (about 3 minutes once; skipped when present).
system-packages:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v wrk >/dev/null \
		&& command -v nginx >/dev/null; then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver wrk nginx; \
	fi

# pytest-xdist: PYTEST_WORKERS test processes (the browser tests all in one of them, with one Chromium).
PYTEST_WORKERS ?= 2
export PYTEST_WORKERS
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

test: $(VENV)/.dev system-packages
	$(PYTEST)

# The scale-out configuration: PostgreSQL + Redis broker (installs and starts both on this machine).
test-scaleout: $(VENV)/.dev
	bash scripts/test-scaleout.sh

test-fast: $(VENV)/.dev
	$(PYTEST) -m "not slow"

# The soak test for 5 minutes instead of the suite's 30 s (SOAK_SECONDS=... to choose).
SOAK_SECONDS ?= 300
soak: $(VENV)/.dev
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/e2e/test_soak.py

# ruff (lint and format), import-linter (the layers contract in pyproject.toml) and the structure rules
# import-linter cannot see (scripts/check_structure.py: where state changes, admission, file operations).
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_structure.py

# Rewrite the README's screenshots in docs/screenshots/ (the browser tests write them only when asked).
screenshots: $(VENV)/.dev system-packages
	SCREENSHOTS=1 $(BIN)/pytest tests/e2e/test_browser.py

# Side by side with the reference loop, through the real service; figures printed and kept in bench/results.json.
bench: $(VENV)/.dev system-packages
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/formats.py
	$(BIN)/python bench/polling.py
	$(BIN)/python bench/status_answer.py
	$(BIN)/python bench/download.py --against-gthread 5
	$(BIN)/python bench/events.py
	$(BIN)/python bench/cancel.py
	$(BIN)/python bench/cancel_service.py
	$(BIN)/python bench/cleanup.py
	$(BIN)/python bench/encode.py
	$(BIN)/python bench/warp.py
	$(BIN)/python bench/warp_pipeline.py
	$(BIN)/python bench/grid.py
	$(BIN)/python bench/hostile.py

clean:
	rm -rf $(VENV) data
