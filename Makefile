# Wraps the CMake steps so the README's two commands stay two:
#   make run   - install what is missing, build, run the daemon on the embedded default
#   make test  - install what is missing, build, run every test (unit also under ASan+UBSan)
# Longer soak and load runs: make bench (see docs/benchmarks.md).

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CONFIG     ?= examples/coordinator.json

.PHONY: all deps build run test test-asan test-main bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/coordinator/coordinator --config $(CONFIG)

test: test-asan test-main

test-asan:
	@scripts/deps.sh --test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCOORD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) -L 'unit|fuzz|integration' --output-on-failure -j $(JOBS) --no-label-summary

test-main:
	@scripts/deps.sh --test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure --no-label-summary

bench: build
	tests/bench/run-all.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
