# The README's two commands are `make run` and `make test`; `make bench` measures.
# Each installs the Debian packages it needs first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps build run test test-unit test-asan bench chaos fuzz screenshots clean

all: build

deps:
	@scripts/install-deps.sh build

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

run: build
	@scripts/run-example.sh

# Release build and every suite; then the unit suite on an ASan/UBSan build and the
# integration suite against its binary; then a smoke run of each fuzz target
# (scripts/test.sh says how many tests run at once, and why).
test:
	@scripts/install-deps.sh test
	@JOBS=$(JOBS) CTEST_ARGS="$(CTEST_ARGS)" scripts/test.sh

test-asan:
	@scripts/install-deps.sh test
	@JOBS=$(JOBS) scripts/test.sh asan

bench: build
	@scripts/install-deps.sh bench
	@bench/ingest_bench.sh
	@bench/scaleout.sh
	@bench/sidecar_bench.sh
	@bench/telemetry_bench.sh
	@bench/memory_bench.sh
	@build/release/micro_bench --benchmark_filter=BM_Metrics
	@bench/sources_bench.sh
	@bench/history_bench.sh
	@bench/flow_bench.sh
	@bench/peers_bench.sh
	@bench/sdk_bench.sh

# The web console at 1280x800, every page in light and dark, into docs/screenshots/.
screenshots: build
	@scripts/install-deps.sh test
	@FIREBREAK_BIN=$(CURDIR)/build/release/firebreak node tests/browser/screenshots.mjs

# libFuzzer targets (fuzz/), FUZZ_SECONDS each (default 10 minutes).
FUZZ_SECONDS ?= 600
fuzz:
	@scripts/install-deps.sh test
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Multi-host chaos test on the redis backend, full 5-minute run (root: network namespaces).
chaos: build
	@scripts/install-deps.sh test
	@python3 tests/chaos/chaos.py --bin build/release/firebreak --seconds 300

clean:
	rm -rf build
