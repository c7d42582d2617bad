# The two commands: `make demo` and `make test` (README.md). Each installs what it needs.
SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all install build lint typecheck depcheck unit test demo bench clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

install: $(NODE_MODULES_STAMP)

build: install
	npx tsc -p tsconfig.build.json

lint: install
	npx eslint .

typecheck: install
	npx tsc -p tsconfig.json --noEmit

depcheck: install
	npx depcruise src --config .dependency-cruiser.cjs

# Everything CI runs. Interop tests skip without root or a peer tool, and fail instead under CI=true.
test: build lint typecheck depcheck
	npx vitest run

# A local multi-node run on 127.0.0.x; see README for what it shows at this stage.
demo: build
	node dist/cli/demo.js

# Benchmarks side by side with native peers (native-bench/); `make bench ONLY=tcp` runs a subset.
bench: build
	node --import tsx native-bench/run.ts $(ONLY)

clean:
	rm -rf dist node_modules .bench-out
