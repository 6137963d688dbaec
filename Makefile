# The two entry points of the README, plus the pieces they are made of.
#   make run   install what is missing, build, run the main job (topologies/quickstart.zpl)
#   make test  install what is missing, build (warnings are errors), run the whole suite
# The sanitizer suite builds a second tree with ASan+UBSan and runs the tests labelled `asan`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
TOPOLOGY   ?= topologies/quickstart.zpl

.PHONY: all bootstrap build run test test-asan clean

all: build

bootstrap:
	@tools/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -DHAFL_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/hafl run $(TOPOLOGY)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

test-asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -DHAFL_WERROR=ON -DHAFL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L asan

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
