# torch-pjrt build. `make demo` and `make test` bootstrap everything on a fresh
# machine: the .venv with pinned dependencies, libtpj, the Python extension.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.tpj-installed
CC ?= cc

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude -Isrc -fPIC -g
REL_CFLAGS := $(CFLAGS_BASE) -O2
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_CFLAGS := $(CFLAGS_BASE) -O1 $(SAN)

SRCS := $(shell find src -name '*.c' | sort)
INCS := $(shell find include src -name '*.h' -o -name '*.inc')
TEST_SRCS := $(sort $(wildcard tests/c/test_*.c))
FAKE_SRCS := $(sort $(wildcard tests/fake_plugin/*.c))
TOOL_SRCS := $(sort $(wildcard tools/*.c))

REL := build/release
ASAN := build/asan
REL_OBJS := $(SRCS:%.c=$(REL)/obj/%.o)
ASAN_OBJS := $(SRCS:%.c=$(ASAN)/obj/%.o)

# Where the C tests and tools look for plugins ("cpu" -> xla-cpu-pjrt's .so).
SITE = $(shell $(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export TORCH_PJRT_PLUGIN_PATH ?= $(SITE)
# The persistent compile cache of everything run from make: per checkout, never
# ~/.cache. C test binaries each get a fresh one per run (below); pytest makes
# its own in tests/python/conftest.py.
export TORCH_PJRT_CACHE_DIR ?= $(CURDIR)/build/compile-cache

.PHONY: all lib ext venv demo test test-c test-c-asan test-py test-py-portable test-full bench clean \
  tools fuzz fuzz-run bench-deploy bench-ddp bench-spmd
all: lib tools

# ----------------------------------------------------------------- bootstrap --
venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml setup.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-build-isolation --no-deps -e .
	@touch $@

# Rebuilds the extension in place whenever any C source changes.
PYEXT_SRCS := $(shell find python -name '*.c' -o -name '*.h' -o -name '*.cpp' 2>/dev/null)
EXT := build/.ext-built
ext: $(EXT)
$(EXT): $(STAMP) $(SRCS) $(INCS) $(PYEXT_SRCS) setup.py
	@mkdir -p build
	$(VPY) setup.py -q build_ext --inplace -j 2 >/dev/null
	@touch $@

# --------------------------------------------------------------------- C lib --
lib: $(REL)/libtpj.a $(REL)/libtpj.so

$(REL)/obj/%.o: %.c $(INCS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@
$(ASAN)/obj/%.o: %.c $(INCS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

$(REL)/libtpj.a: $(REL_OBJS)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(REL)/libtpj.so: $(REL_OBJS)
	$(CC) -shared -o $@ $^ -ldl -lm -lpthread
$(ASAN)/libtpj.a: $(ASAN_OBJS)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

# The fault-injecting fake plugin, built only for tests.
$(REL)/libfake_pjrt.so: $(FAKE_SRCS) $(INCS)
	$(CC) $(REL_CFLAGS) -shared -o $@ $(FAKE_SRCS)
$(ASAN)/libfake_pjrt.so: $(FAKE_SRCS) $(INCS)
	$(CC) $(REL_CFLAGS) -shared -o $@ $(FAKE_SRCS)

$(REL)/tests/%: tests/c/%.c $(REL)/libtpj.a tests/c/tpj_test.h
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -Itests/c $< $(REL)/libtpj.a -o $@ -ldl -lm -lpthread
$(ASAN)/tests/%: tests/c/%.c $(ASAN)/libtpj.a tests/c/tpj_test.h
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Itests/c $< $(ASAN)/libtpj.a -o $@ -ldl -lm -lpthread

$(REL)/tools/%: tools/%.c $(REL)/libtpj.a
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $< $(REL)/libtpj.a -o $@ -ldl -lm -lpthread

# tpj-run: libtpj linked statically, so the binary needs only the C runtime.
tools: $(REL)/tools/tpj-run

REL_TESTS := $(TEST_SRCS:tests/c/%.c=$(REL)/tests/%)
ASAN_TESTS := $(TEST_SRCS:tests/c/%.c=$(ASAN)/tests/%)
TOOLS := $(TOOL_SRCS:tools/%.c=$(REL)/tools/%)

# ------------------------------------------------------------------- fuzzing --
# libFuzzer harnesses (tests/fuzz/fuzz_*.c) over every parser of outside input
# (artifact container and manifest, safetensors, .npy), with ASan + UBSan.
# clang comes from Debian; `make fuzz` installs it when it is missing.
CLANG ?= clang-14
FUZZ := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ)/%)
FUZZ_OBJS := $(SRCS:%.c=$(FUZZ)/obj/%.o)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -g -O1 -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=undefined

$(FUZZ)/.clang:
	@mkdir -p $(FUZZ)
	@command -v $(CLANG) >/dev/null || { apt-get update -q && apt-get install -y -q clang-14 libfuzzer-14-dev; }
	@touch $@
$(FUZZ)/obj/%.o: %.c $(INCS) $(FUZZ)/.clang
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ)/libtpj.a: $(FUZZ_OBJS)
	@rm -f $@; ar rcs $@ $^
$(FUZZ)/%: tests/fuzz/%.c $(FUZZ)/libtpj.a
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ)/libtpj.a -o $@ -ldl -lm -lpthread
fuzz: $(FUZZ_BINS)

# Each harness for FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/NAME);
# new inputs go to build/fuzz/corpus/NAME, crashes to build/fuzz/crash-*.
fuzz-run: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); \
	  mkdir -p $(FUZZ)/corpus/$$n; echo "fuzzing $$n for $(FUZZ_SECONDS) s"; \
	  UBSAN_OPTIONS=halt_on_error=1 $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ)/crash-$$n- $(FUZZ)/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | tail -4; \
	  test $${PIPESTATUS[0]} -eq 0; done

# ---------------------------------------------------------------------- tests --
test-c: $(STAMP) $(REL_TESTS) $(REL)/libfake_pjrt.so
	@set -e; rm -rf $(REL)/test-cache; for t in $(REL_TESTS); do \
	  TORCH_PJRT_CACHE_DIR=$(CURDIR)/$(REL)/test-cache/$$(basename $$t) \
	  TPJ_FAKE_PLUGIN=$(CURDIR)/$(REL)/libfake_pjrt.so $$t; done

# ASan + UBSan + LSan. The XLA plugin itself is not instrumented; its own
# process-lifetime allocations are suppressed in tests/lsan.supp.
test-c-asan: $(STAMP) $(ASAN_TESTS) $(ASAN)/libfake_pjrt.so
	@set -e; rm -rf $(ASAN)/test-cache; for t in $(ASAN_TESTS); do \
	  TORCH_PJRT_CACHE_DIR=$(CURDIR)/$(ASAN)/test-cache/$$(basename $$t) \
	  TPJ_FAKE_PLUGIN=$(CURDIR)/$(ASAN)/libfake_pjrt.so \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t; done

test-py: $(EXT) $(REL)/libfake_pjrt.so tools
	TPJ_FAKE_PLUGIN=$(CURDIR)/$(REL)/libfake_pjrt.so $(VPY) -m pytest -q tests/python -m "not full"

# The op suites again on PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default),
# as on a host without AVX2: the references must not depend on the vector ISA.
test-py-portable: $(EXT) $(REL)/libfake_pjrt.so
	ATEN_CPU_CAPABILITY=default TPJ_FAKE_PLUGIN=$(CURDIR)/$(REL)/libfake_pjrt.so \
	  $(VPY) -m pytest -q -m "not full" tests/python/test_ops_elementwise.py \
	  tests/python/test_ops_reduce.py tests/python/test_ops_nn.py tests/python/test_ops_shape.py \
	  tests/python/test_ops_special.py tests/python/test_opinfo.py

test: test-c test-c-asan test-py test-py-portable

test-full: $(EXT) $(REL)/libfake_pjrt.so tools
	TPJ_FAKE_PLUGIN=$(CURDIR)/$(REL)/libfake_pjrt.so $(VPY) -m pytest -q tests/python
	$(MAKE) fuzz-run

demo: $(EXT) $(TOOLS)
	$(VPY) -m torch_pjrt.demo

bench: $(EXT)
	$(VPY) -m pip install -q -r requirements-bench.txt
	$(VPY) -m torch_pjrt.bench --quick $(BENCH_ARGS)

# Deployment latency: eager, export.load, tpj-run and AOTInductor side by side.
bench-deploy: $(EXT) tools
	$(VPY) -m torch_pjrt.bench --deploy $(BENCH_ARGS)

# DDP step cost: no DDP vs DDP with 1 and 2 processes under torchrun (issue 14).
bench-ddp: $(EXT)
	$(VPY) -m torch_pjrt.bench --ddp $(BENCH_ARGS)

# SPMD step cost: GPT under dp, fsdp and 2d layouts on 1, 2, 4 and 8 XLA CPU devices.
bench-spmd: $(EXT)
	$(VPY) -m torch_pjrt.bench --spmd $(BENCH_ARGS)

clean:
	rm -rf build python/torch_pjrt/*.so python/torch_pjrt/lib *.egg-info python/*.egg-info
