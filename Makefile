# sievedb developer tasks. `make demo` and `make test` each build .venv on first use.
#
#   make venv        .venv with the package (editable) and the dev extra
#   make demo        sievedb demo (real in-process server, 100k seeded vectors)
#   make test        the pytest suite
#   make bench-deps  add the bench extra (faiss-cpu, matplotlib, pyyaml)
#   make bench-peers add the peers extra (chromadb, lancedb, milvus-lite, pgvector, qdrant)
#   make proto       regenerate the committed gRPC/protobuf code
#   make clean       remove .venv, build artefacts and caches (not ./sievedb-data)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamps make re-running cheap; they are keyed on pyproject.toml, so a change of
# dependencies reinstalls.
DEV_STAMP := $(VENV)/.stamp-dev
BENCH_STAMP := $(VENV)/.stamp-bench
PEERS_STAMP := $(VENV)/.stamp-peers
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv demo test bench-deps bench-peers proto clean

venv: $(DEV_STAMP)

# hnswlib ships only an sdist and compiles here. --build-constraint keeps its build (and the
# build of sievedb's own C++ extensions, setup.py) on pybind11 2.x: the GIL-free filtered search
# needs both modules on shared pybind11 internals (server/sievedb_server/index/native_filter.py).
# pip >= 26.2 applies only build constraints inside isolated builds (PIP_CONSTRAINT and -c do
# not reach them). --no-cache-dir: pip's wheel cache is keyed on the sdist alone, so a hnswlib
# wheel built earlier against pybind11 3 would otherwise be reused. An older .venv keeps its
# hnswlib: `make clean venv` rebuilds it (sievedb then logs why the native filter is off).
PIP_BUILD := --no-cache-dir --build-constraint constraints-build.txt

$(DEV_STAMP): pyproject.toml setup.py constraints-build.txt server/sievedb_server/index/_native_filter.cpp \
		server/sievedb_server/index/_native_scan.cpp
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(PIP_BUILD) -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/sievedb demo $(DEMO_ARGS)

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench-deps: $(BENCH_STAMP)

$(BENCH_STAMP): $(DEV_STAMP) pyproject.toml
	$(BIN)/python -m pip install $(PIP_BUILD) -e '.[bench]'
	touch $@

# The peer systems of the FANNS suite; then `python -m benchmarks.peers_smoke` or the suite.
bench-peers: $(PEERS_STAMP)

$(PEERS_STAMP): $(BENCH_STAMP) pyproject.toml
	$(BIN)/python -m pip install $(PIP_BUILD) -e '.[peers]'
	touch $@

proto: venv
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) build dist *.egg-info */*.egg-info server/sievedb_server/*.so .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
