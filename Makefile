# The two commands a newcomer needs (see README.md):
#   make run    create the environment, install, migrate, seed a demo, serve
#   make test   install and run the whole test suite
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
# `make test` runs pytest -q plus PYTEST_ARGS, minus any -q of theirs: a second -q
# would hide pytest's summary line ("N passed in ..."), e.g. with PYTEST_ARGS=-q.
QUIET_FLAGS = -q -qq --quiet

.PHONY: run test bench load install

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) devserver.py

test: install
	$(PY) -m pytest -q $(filter-out $(QUIET_FLAGS),$(PYTEST_ARGS))

bench: install
	$(PY) -m tests.bench $(BENCH_ARGS)

# The load test (tests/load.py): gunicorn + PostgreSQL + the vendor sandbox, Locust headless.
load: install
	$(PY) -m pip install -q -r requirements-load.txt
	$(PY) -m tests.load $(LOAD_ARGS)
