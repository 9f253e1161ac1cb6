# moat: one top-level Makefile. Output under build/ (objects, libraries, tests) and bin/.
#   make            build the three programs (and CUDA sources when nvcc is found)
#   make check      unit tests (cmocka) + integration tests (pytest); needs no GPU
#   make asan       same programs built with AddressSanitizer + UBSan under build-asan/
#   make fuzz-check libFuzzer targets, 20 s each (part of check); make fuzz FUZZ_TIME=600
#   CUDA=0          never use nvcc; CUDA=1 require it; CUDA=auto (default) detect it
# Module fragments (kernels/kernels.mk, ...) append to CHECK_BINS and BENCH_BINS.

CC      ?= cc
BUILD   ?= build
BIN     ?= bin
CUDA    ?= auto
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

ifeq ($(CUDA),auto)
  ifneq ($(NVCC),)
    HAVE_CUDA := 1
  else
    HAVE_CUDA := 0
  endif
else
  HAVE_CUDA := $(CUDA)
endif
ifneq ($(HAVE_CUDA),1)
  $(info moat: building without CUDA (nvcc not found or CUDA=0): CUDA sources skipped, CPU backend only)
endif

OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP -I. $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
DEP_LIBS := -lzmq -llmdb -lconfig -ljansson -lsodium -lcrypto -lutf8proc -lm -lpthread

CHECK_BINS :=
BENCH_BINS :=

.PHONY: all check unit integration asan clean bench
all: $(BIN)/moat-controller $(BIN)/moat-worker $(BIN)/moat $(BIN)/moat-reap

# ---- shared library: the project's own code used by daemons and CLI ----
SHARED_SRC := $(wildcard shared/*.c)
SHARED_OBJ := $(SHARED_SRC:%.c=$(BUILD)/%.o)
SHARED_LIB := $(BUILD)/libmoat.a
$(SHARED_LIB): $(SHARED_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# ---- kernels (op API, CPU/ref/CUDA backends): its own fragment ----
include kernels/kernels.mk

# ---- fuzzing (clang libFuzzer targets, seed corpus): its own fragment ----
include tests/fuzz/fuzz.mk

# ---- NCCL for GPU TP ranks (worker/wrk_nccl.c), only with CUDA ----
# NCCL=0: build the worker without it (its GPU ranks then all-reduce over ZeroMQ
# and test_nccl skips). NCCL_HOME: where include/nccl.h is when not in CUDA_HOME,
# NCCL_LIBDIR where libnccl.so.2 is (the pip wheel nvidia-nccl-cu13 has
# nvidia/nccl/{include,lib}, and no libnccl.so link name: hence -l:libnccl.so.2).
NCCL ?= $(HAVE_CUDA)
NCCL_HOME ?= $(CUDA_HOME)
NCCL_LIBDIR ?= $(NCCL_HOME)/lib64
ifeq ($(HAVE_CUDA)$(NCCL),11)
$(BUILD)/worker/wrk_nccl.o: CFLAGS += -DMOAT_HAVE_NCCL -I$(CUDA_HOME)/include -I$(NCCL_HOME)/include
NCCL_LDLIBS := -L$(NCCL_LIBDIR) -Wl,-rpath,$(NCCL_LIBDIR) -l:libnccl.so.2
endif

# ---- dependencies unpacked under a prefix (scripts/gpu-deps.sh, tests/gpu/run.sh) ----
# DEPS_PREFIX=dir: headers and libraries from dir/usr (a tree of `dpkg-deb -x`d
# Debian amd64 packages) before the system's. Headers as -isystem, as they would
# be in /usr/include; programs get the library folders as DT_RPATH
# (--disable-new-dtags): unlike DT_RUNPATH it also serves the libraries' own
# needs (libzmq's libpgm, OpenBLAS's libgfortran) without LD_LIBRARY_PATH.
ifneq ($(DEPS_PREFIX),)
DEPS_LIBDIRS := $(addprefix $(DEPS_PREFIX)/,usr/lib/x86_64-linux-gnu \
                usr/lib/x86_64-linux-gnu/openblas-pthread lib/x86_64-linux-gnu)
CFLAGS  += -isystem $(DEPS_PREFIX)/usr/include \
           -isystem $(DEPS_PREFIX)/usr/include/x86_64-linux-gnu/openblas-pthread
LDFLAGS += $(DEPS_LIBDIRS:%=-L%) -Wl,--disable-new-dtags $(DEPS_LIBDIRS:%=-Wl,-rpath,%)
endif

# ---- programs ----
CTL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard controller/*.c))
WRK_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard worker/*.c))
CLI_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))

$(BIN)/moat-controller: $(CTL_OBJ) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# The worker's bench task reports GEMM rows against cuBLAS on CUDA builds
# (bench/kernels/bench_cublas.c, KRN_BENCH_REF_OBJ from kernels/kernels.mk,
# which dlopens cuBLAS only when a bench task on a GPU asks for it).
$(BIN)/moat-worker: $(WRK_OBJ) $(KRN_BENCH_REF_OBJ) $(SHARED_LIB) $(KRN_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(KRN_LDLIBS) $(NCCL_LDLIBS)

# moat-reap: the reaper service of unsandboxed exec tasks (worker/wrk_reap.h),
# libc only and linked statically: small, so that its copies cost little.
# The per-task reaper shares the service's memory without being its thread
# (worker/wrk_reap_task.h): no sanitizer runtime there, whose per-thread state
# it would share.
$(BUILD)/worker/wrk_reap_task.o: override SANFLAGS =
$(BIN)/moat-reap: $(BUILD)/worker/reap/moat_reap.o $(BUILD)/worker/wrk_reap.o $(BUILD)/worker/wrk_reap_task.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $(if $(SANFLAGS),,-static) -o $@ $^

$(BIN)/moat: $(CLI_OBJ) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# ---- unit tests: tests/unit/test_<module>.c, one binary each, cmocka ----
# A test may link controller/worker objects other than the program's main().
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
CTL_LIBOBJ := $(filter-out $(BUILD)/controller/ctl_main.o,$(CTL_OBJ))
WRK_LIBOBJ := $(filter-out $(BUILD)/worker/wrk_main.o,$(WRK_OBJ))
CHECK_BINS += $(UNIT_BINS)
$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(CTL_LIBOBJ) $(WRK_LIBOBJ) $(KRN_BENCH_REF_OBJ) $(SHARED_LIB) $(KRN_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(CTL_LIBOBJ) $(WRK_LIBOBJ) $(KRN_BENCH_REF_OBJ) $(SHARED_LIB) $(KRN_LIB) $(DEP_LIBS) $(KRN_LDLIBS) $(NCCL_LDLIBS) -lcmocka

# test_cli_idset tests a part of the CLI
$(BUILD)/tests/test_cli_idset: $(BUILD)/tests/unit/test_cli_idset.o $(BUILD)/cli/cli_idset.o $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) -lcmocka

# test_reap drives bin/moat-reap
$(BUILD)/tests/test_reap: $(BIN)/moat-reap

# ---- the cuda backend on the CPU emulator (no GPU, no nvcc needed): its own fragment ----
# (after the unit tests: it builds emulated copies of those with a GPU part)
include tests/cusim/cusim.mk

# ---- benchmarks ----
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BINS += $(BENCH_SRC:bench/%.c=$(BIN)/bench-%)
$(BIN)/bench-%: $(BUILD)/bench/%.o $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)
# bench/infer uses the worker's model code and the kernels.
BENCH_BINS += $(BIN)/bench-infer
$(BIN)/bench-infer: $(BUILD)/bench/infer/bench_infer.o $(WRK_LIBOBJ) $(KRN_BENCH_REF_OBJ) $(SHARED_LIB) $(KRN_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(KRN_LDLIBS) $(NCCL_LDLIBS)
# bench/store drives the controller's own TASK_END path in process.
BENCH_BINS += $(BIN)/bench-store
$(BIN)/bench-store: $(BUILD)/bench/store/bench_store.o $(CTL_LIBOBJ) $(SHARED_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)
# bench/reap drives the worker's handle on the reaper service.
BENCH_BINS += $(BIN)/bench-reap
$(BIN)/bench-reap: $(BUILD)/bench/reap/bench_reap.o $(BUILD)/worker/wrk_reaper.o $(BUILD)/worker/wrk_proctab.o $(SHARED_LIB) $(BIN)/moat-reap
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(DEP_LIBS)
bench: all $(BENCH_BINS)

# ---- test entry points ----
unit: $(CHECK_BINS)
	@set -e; for t in $(CHECK_BINS); do echo "== $$t"; $$t; done

integration: all
	python3 -m pytest -q tests/integration

check: all $(CHECK_BINS) bench
	@set -e; for t in $(CHECK_BINS); do echo "== $$t"; $$t; done
	$(MAKE) fuzz-check
	python3 -m pytest -q tests/integration

asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin OPT=-O1 \
	  SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all

clean:
	rm -rf $(BUILD) build-asan build-fuzz $(BIN)

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
