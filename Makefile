# Two commands: `make demo` runs the product on embedded defaults; `make test` runs the whole suite against real
# PostgreSQL and Redis. Both create .venv and install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test lint format clean chromium bench-langgraph

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: $(VENV)/bin/python requirements.txt constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

demo: $(VENV)/.runtime
	@mkdir -p var
	DJANGO_SETTINGS_MODULE=sandbox.settings_demo PORT=$(PORT) $(PY) manage.py demo

# The browser tests (tests/browser) drive Debian's Chromium: Playwright's own browser downloads fail on our machines.
CHROMIUM_BIN := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM_BIN) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "/usr/bin/chromium is missing: install Debian's chromium package (apt-get install chromium) as root" >&2; exit 1; fi; \
	  if ! command -v apt-get >/dev/null; then \
	    echo "/usr/bin/chromium is missing: install the chromium package (Debian: apt-get install chromium)" >&2; exit 1; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
	    || { echo "Installing chromium failed: install Debian's chromium package so /usr/bin/chromium exists" >&2; exit 1; }; \
	  [ -x $(CHROMIUM_BIN) ] || { echo "$(CHROMIUM_BIN) is still missing: install Debian's chromium package" >&2; exit 1; }; \
	fi

# pytest runs twice, no test twice: the product alone, without the sandbox app (the proof that it is optional), then
# the tests that need the stand-in company (marked `company` by tests/conftest.py). Exit status 5: none selected.
# Compiled modules are cached (in __pycache__, which git ignores) even where the environment sets PYTHONDONTWRITEBYTECODE,
# as ours does: the second pass and every worker, server and manage.py process a test starts then load the modules
# (and pytest's rewritten test modules) the first compiled, instead of compiling them again (~14 s of CPU a pass).
test: export PYTHONDONTWRITEBYTECODE :=
test: $(VENV)/.dev chromium
	bash scripts/ensure_services.sh
	DJANGO_SETTINGS_MODULE=agentconsole.settings_test $(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	TEST_DATABASE_URL=sqlite:///:memory: DJANGO_SETTINGS_MODULE=sandbox.settings_test $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest --ds agentconsole.settings_test $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest -m company $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The separate environment of bench/episode.py's LangGraph anchor (never the product's .venv).
LANGGRAPH_VENV := bench/.venv-langgraph
$(LANGGRAPH_VENV)/.installed: bench/requirements-langgraph.txt
	$(PYTHON) -m venv $(LANGGRAPH_VENV)
	$(LANGGRAPH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-langgraph.txt
	touch $@
bench-langgraph: $(LANGGRAPH_VENV)/.installed

clean:
	rm -rf $(VENV) var .pytest_cache $(LANGGRAPH_VENV)
