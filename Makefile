# Postern: `make run` installs what is missing, builds and serves a demo configuration under ./var;
# `make test` builds and runs every test (unit, fuzz corpus replay, end to end), then again under ASan+UBSan.
JOBS ?= 2
VAR ?= var

.PHONY: all deps build build-asan run test test-release test-asan unit e2e fuzz format clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build -j$(JOBS)

build-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	./build/postern -c $(VAR) demo

unit: build
	cd build && ctest --output-on-failure -j$(JOBS)

e2e: build
	POSTERN_BIN=$(CURDIR)/build/postern /usr/bin/python3 -m pytest -q tests/e2e

test-release: build
	bash scripts/test.sh build

test-asan: build-asan
	bash scripts/test.sh build-asan

test: build build-asan
	bash scripts/test.sh build build-asan

fuzz: deps
	bash scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build build-asan build-fuzz
