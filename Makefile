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

# Release build: unit + integration suites; then both again with ASan/UBSan (the
# integration suite then drives the sanitized binary).
test:
	@scripts/install-deps.sh test
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@ctest --test-dir build/release --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@$(MAKE) --no-print-directory test-asan
	@scripts/fuzz.sh 5    # smoke run of every fuzz target under ASan/UBSan

# The integration suite is the release one, driving the sanitized binary: it only talks
# to firebreak over HTTP and processes, so compiling it again with ASan would buy nothing.
# ASan keeps freed memory in a quarantine (256 MiB by default) to catch use-after-free;
# it fills with every byte the server frees, so HostileTest's RSS bound (64 MiB) would
# measure the quarantine rather than a leak: 16 MiB keeps the check meaningful.
test-asan:
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target integration_tests
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS) --target unit_tests firebreak
	@ctest --test-dir build/asan --output-on-failure -j $(JOBS)
	@FIREBREAK_BIN=$(CURDIR)/build/asan/firebreak ASAN_OPTIONS=quarantine_size_mb=16 \
	  ctest --test-dir build/release -L integration --output-on-failure -j $(JOBS)

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
