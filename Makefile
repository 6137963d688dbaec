# The two entry points of the README, plus the pieces they are made of.
#   make run   install what is missing, build, run the main job (topologies/quickstart.zpl)
#   make test  install what is missing, build (warnings are errors), run the whole suite
# The sanitizer suite builds a second tree with ASan+UBSan and runs the tests labelled `asan`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
TOPOLOGY   ?= topologies/quickstart.zpl

# cmake --build runs make three levels deep, and a make run from another prints "Entering
# directory" and "Leaving directory" around everything it does; this make and every make below it
# (MAKEFLAGS is passed down) keep quiet about directories.
MAKEFLAGS += --no-print-directory

.PHONY: all bootstrap build run test test-asan clean

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
test: build
	@failed=""; \
	echo "cd $(BUILD) && ctest --output-on-failure -j $(JOBS)"; \
	(cd $(BUILD) && ctest --output-on-failure -j $(JOBS)) || failed="$$failed, the main suite ($(BUILD))"; \
	$(MAKE) test-asan || failed="$$failed, the ASan+UBSan suite ($(ASAN_BUILD))"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED: $${failed#, }" >&2; exit 1; fi; \
	echo "make test: both suites passed"

test-asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -DHAFL_WERROR=ON -DHAFL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L asan

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
