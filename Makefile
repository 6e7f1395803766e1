# lkproto: the README's commands. `make test` on a fresh machine installs everything it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lkproto-installed

.PHONY: setup test lint typecheck pytest demo bench proto proto-check clean

setup: $(STAMP) $(VENV)/bin/livekit-server

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(VENV)/bin/livekit-server: scripts/install-livekit-server.sh | $(STAMP)
	bash scripts/install-livekit-server.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest

# The whole suite: lint, types, then every test (core, transports, e2e on the real server,
# schema conformance, packaging). The pytest summary is the last thing printed.
test: lint typecheck pytest

proto: setup
	$(PY) proto/generate.py

proto-check: setup
	$(PY) proto/generate.py --check

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
