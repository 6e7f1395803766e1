# lkproto: the README's commands. `make test` on a fresh machine installs everything it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lkproto-installed
# The schema generator's pin (bundles protoc 29, writes gencode 5.29 that runs on protobuf
# 5.29 to 7.x). Installed without its dependencies: it declares protobuf<6, and we test
# against current protobuf.
GRPC_TOOLS := grpcio-tools==1.71.2 grpcio==1.71.2

.PHONY: setup js-peer test check lint typecheck pytest demo server apidoc bench proto proto-check clean fuzz

setup: $(STAMP) $(VENV)/bin/livekit-server $(VENV)/bin/lkproto-go-peer js-peer

$(STAMP): pyproject.toml Makefile scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(GRPC_TOOLS)
	touch $(STAMP)

$(VENV)/bin/livekit-server: scripts/install-livekit-server.sh | $(STAMP)
	bash scripts/install-livekit-server.sh

# The Go SDK test peer (peers/go, its version pinned in peers/go/go.mod).
$(VENV)/bin/lkproto-go-peer: scripts/install-go-peer.sh $(wildcard peers/go/*.go) peers/go/go.mod peers/go/go.sum | $(STAMP)
	bash scripts/install-go-peer.sh

# The JavaScript peer of the e2e tests (livekit-client in Debian's Chromium, peers/js): npm ci
# from the lockfile and our page bundled. Idempotent and quick when nothing changed.
js-peer: | $(STAMP)
	bash scripts/install-js-peer.sh

# Lint (ruff) and types (mypy --strict, also over the examples, the scripts and the typing
# tests of the adapters' exports), defined once in scripts/check-static.sh. `make test` and
# `make check` run both inside pytest (tests/test_static_checks.py), beside other tests.
lint: setup
	bash scripts/check-static.sh lint

typecheck: setup
	bash scripts/check-static.sh typecheck

# The tests run on TEST_WORKERS pytest-xdist workers, each a process with a network namespace
# and a livekit-server of its own; most of an e2e test is waiting (on the server, the network,
# a timeout), so more workers than cores pays. The tests marked `serial` run alone first, the
# fault bench one test at a time beside the others, the secrets audit last
# (tests/harness/phases.py, docs/testing.md). TEST_WORKERS=0 runs everything in one process,
# in file order.
TEST_WORKERS ?= 6
# Bytecode caches are written even where the environment asks for none
# (PYTHONDONTWRITEBYTECODE): the suite starts a few hundred Python processes (workers, CLI
# and README children, fuzz targets), and without caches each compiles lkproto from source
# and pytest rewrites every test module again in every worker.
pytest: setup
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n $(TEST_WORKERS)

# Two `lkproto` CLI participants (an RPC, a streamed text reply, a file with progress bars)
# through a confined local livekit-server, or through the server in LIVEKIT_URL if set.
demo: setup
	$(PY) scripts/demo.py

# A local livekit-server for your own programs (the README's quickstarts): bound to
# 127.0.0.1 only; prints the LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET to export.
# Runs until Ctrl-C.
server: setup
	LKPROTO_FORCE_LOOPBACK=1 $(PY) scripts/demo.py --serve

# The API reference, generated from the docstrings by pdoc, in build/api/index.html (a test
# in `make test` fails on a public name without a docstring).
apidoc: setup
	$(PY) scripts/apidoc.py build/api

# The whole suite: every test (lint and types, core, transports, e2e on the real server,
# schema conformance, packaging). The pytest summary is the last thing printed.
test: pytest

# The quick loop: lint, types, and every test that needs no server (`-m "not e2e"`; a test
# using a server fixture is marked e2e by tests/conftest.py), without coverage. Under 2 min.
CHECK_WORKERS ?= 2
check: setup
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n $(CHECK_WORKERS) -m "not e2e" --no-cov -q

# Side-by-side benchmarks; figures go into benchmarks/RESULTS.md by hand with the date.
bench: setup
	$(PY) benchmarks/bench_core.py --seconds 2
	$(PY) benchmarks/bench_transport.py
	$(PY) benchmarks/bench_rpc.py
	$(PY) benchmarks/bench_native.py --repeat 5
	$(PY) benchmarks/bench_startup.py
	$(PY) benchmarks/bench_e2ee.py
	$(PY) benchmarks/bench_streams.py
	$(PY) benchmarks/bench_datatracks.py
	$(PY) benchmarks/rss_streams.py
	$(PY) benchmarks/bench_memory.py --seconds 2
	$(PY) benchmarks/bench_faults.py --rounds 3
	$(PY) benchmarks/bench_audio.py --clicks 10
	$(PY) benchmarks/bench_scale.py --sizes 10 50 --sdks lkproto trio threaded official --idle 10
	$(PY) benchmarks/soak.py --cycles 300

# Coverage-guided fuzzing (atheris, fuzz/README.md): each target for FUZZ_SECONDS, starting
# from its seed corpus (fuzz/corpus/, real traffic) plus what earlier runs found
# (build/fuzz-corpus/). A crashing input is saved under fuzz/crashers/<target>/; make it a
# regression test. Extra libFuzzer flags go in FUZZ_FLAGS (e.g. -jobs=2 -workers=2).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= signal_connecting signal_joined data_packet streams rpc datatracks e2ee
FUZZ_FLAGS ?=
fuzz: setup
	@status=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz-corpus/$$t fuzz/crashers/$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
		$(PY) -m fuzz.fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			-timeout=20 -print_final_stats=1 -artifact_prefix=fuzz/crashers/$$t/ \
			$(FUZZ_FLAGS) build/fuzz-corpus/$$t fuzz/corpus/$$t || status=1; \
	done; exit $$status

proto: setup
	$(PY) proto/generate.py

proto-check: setup
	$(PY) proto/generate.py --check

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The state diagrams in docs/state.md, drawn from the literal tables in lkproto/_state.py
# (a core test fails when the committed page is stale).
.PHONY: docs
docs: setup
	$(PY) scripts/draw_states.py
	$(PY) scripts/gen_event_types.py
